"""srlm: Self-Rewarding Language Models as an event-sourced, data-versioned pipeline.

The library behind the DVC stages in `stages/` and the `srlm` command.
"""

__version__ = "0.1.0"
