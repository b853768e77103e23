"""Imported by every Python process whose PYTHONPATH starts with this folder (tests/test_sharded_training.py):
lifts accelerate's rule that FSDP shards on GPUs only, so that a CPU process group (gloo) trains with real
FSDP2 (fully_shard, DTensor shards, the full-state-dict gather, sharded checkpoints) instead of plain data
parallel. srlm's copy of the rule (training.launch.accelerate_shards_here) is lifted with it."""

import os

if os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true":
    import accelerate.state as state

    from srlm_core.training import launch

    accelerator_init = state.AcceleratorState.__init__

    def fsdp_on_cpu(self, *args, fsdp_plugin=None, **kwargs):
        accelerator_init(self, *args, fsdp_plugin=fsdp_plugin, **kwargs)
        if fsdp_plugin is not None and self.distributed_type in (state.DistributedType.MULTI_CPU,
                                                                 state.DistributedType.FSDP):
            # every AcceleratorState() copies PartialState's type back into itself: change it there too
            state.PartialState._shared_state["distributed_type"] = state.DistributedType.FSDP
            self.distributed_type = state.DistributedType.FSDP
            self.fsdp_plugin = fsdp_plugin

    state.AcceleratorState.__init__ = fsdp_on_cpu
    launch.accelerate_shards_here = lambda: True
