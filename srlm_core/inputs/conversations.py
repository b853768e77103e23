"""OpenAssistant message trees: structure checks, quality filters and counts.

Works on `oasst.Message`s in any order, so flat and nested exports of the same content
give the same result. Removing a message removes its replies with it.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from .oasst import Message


@dataclass(frozen=True)
class Filters:
    language: str | None = "en"
    drop_deleted: bool = True
    drop_failed_review: bool = True
    drop_synthetic: bool = True

    @classmethod
    def none(cls) -> "Filters":
        return cls(language=None, drop_deleted=False, drop_failed_review=False, drop_synthetic=False)

    def reason(self, message: Message) -> str | None:
        """Why a message is dropped (None keeps it)."""
        if self.language is not None and message.lang != self.language:
            return "language"
        if self.drop_deleted and message.deleted:
            return "deleted"
        if self.drop_failed_review and message.review_result is False:
            return "failed_review"
        if self.drop_synthetic and message.synthetic:
            return "synthetic"
        return None


def check_structure(messages: list[Message], source: Path | str) -> tuple[list[Message], int]:
    """Messages of complete trees, and how many were skipped as parts of incomplete trees.

    A tree whose root prompt is absent (split exports cut some trees) is skipped and
    counted. Inside a tree that has its root, a missing parent, a non-prompt root, a
    parent in another tree, or a cycle of parent links is an error.
    """
    by_id = {m.message_id: m for m in messages}
    acyclic: set[str] = set()  # chains already walked to their end: each message is walked once (linear time)
    for message in messages:
        walked, current = {}, message  # a dict: ordered, O(1) membership
        while current.message_id not in acyclic:
            if current.message_id in walked:
                raise InputError(source, message.where, f"parent links form a cycle through "
                                 f"{current.message_id}", "every reply chain must end at a root prompt")
            walked[current.message_id] = None
            if current.parent_id is None or current.parent_id not in by_id:
                break
            current = by_id[current.parent_id]
        acyclic.update(walked)
    rooted = {m.tree_id for m in messages if m.parent_id is None}
    for message in messages:
        if message.tree_id not in rooted:
            continue
        if message.parent_id is None:
            if message.role != "prompter":
                raise InputError(source, message.where, f"root message {message.message_id} has role "
                                 f"{message.role!r}; a tree starts with a prompter message")
            continue
        parent = by_id.get(message.parent_id)
        if parent is None:
            raise InputError(source, message.where, f"message {message.message_id} replies to "
                             f"{message.parent_id}, which is not in the data", "include the whole tree")
        if parent.tree_id != message.tree_id:
            raise InputError(source, message.where, f"message {message.message_id} is in tree {message.tree_id} "
                             f"but its parent is in tree {parent.tree_id}")
    kept = [m for m in messages if m.tree_id in rooted]
    return kept, len(messages) - len(kept)


def apply_filters(messages: list[Message], filters: Filters) -> tuple[list[Message], Counter]:
    """Messages that pass the filters and whose every ancestor passes; and drop counts by reason."""
    by_id = {m.message_id: m for m in messages}
    verdict: dict[str, str | None] = {}

    def drop_reason(message: Message) -> str | None:
        chain = []
        current = message
        while current.message_id not in verdict:
            chain.append(current)
            if current.parent_id is None:
                break
            current = by_id[current.parent_id]
        inherited = verdict.get(current.message_id) if current.message_id in verdict else None
        for item in reversed(chain):
            own = filters.reason(item)
            inherited = own if own else ("parent_dropped" if inherited else None)
            verdict[item.message_id] = inherited
        return verdict[message.message_id]

    kept, dropped = [], Counter()
    for message in messages:
        reason = drop_reason(message)
        if reason:
            dropped[reason] += 1
        else:
            kept.append(message)
    return kept, dropped


@dataclass(frozen=True)
class RootPrompt:
    """A tree's first prompt and its assistant replies that humans ranked, best first."""

    tree_id: str
    message: Message
    ranked: tuple[Message, ...]


def root_prompts(messages: list[Message]) -> list[RootPrompt]:
    """One entry per tree, sorted by tree id."""
    children = defaultdict(list)
    for message in messages:
        if message.parent_id is not None:
            children[message.parent_id].append(message)
    roots = []
    for message in sorted((m for m in messages if m.parent_id is None), key=lambda m: m.tree_id):
        ranked = sorted((c for c in children[message.message_id] if c.role == "assistant" and c.rank is not None),
                        key=lambda c: (c.rank, c.message_id))
        roots.append(RootPrompt(message.tree_id, message, tuple(ranked)))
    return roots


@dataclass(frozen=True)
class RankedSiblings:
    """Assistant replies to one user message that humans ranked against each other (>= 2), best
    first, with the conversation that led to them: the messages from the tree's root prompt down to
    that user message. `depth` is the replies' depth in the tree (1: replies to the root prompt)."""

    tree_id: str
    conversation: tuple[Message, ...]
    ranked: tuple[Message, ...]

    @property
    def depth(self) -> int:
        return len(self.conversation)


def ranked_siblings(messages: list[Message]) -> list[RankedSiblings]:
    """Every group of >= 2 ranked assistant siblings, at any depth; sorted by tree, depth, parent id.
    Expects complete, filtered trees (check_structure, apply_filters): every parent is present."""
    by_id = {m.message_id: m for m in messages}
    children = defaultdict(list)
    for message in messages:
        if message.parent_id is not None:
            children[message.parent_id].append(message)
    groups = []
    for parent_id, replies in children.items():
        ranked = sorted((c for c in replies if c.role == "assistant" and c.rank is not None),
                        key=lambda c: (c.rank, c.message_id))
        if len(ranked) < 2 or by_id[parent_id].role != "prompter":
            continue
        path = [by_id[parent_id]]
        while path[-1].parent_id is not None:
            path.append(by_id[path[-1].parent_id])
        groups.append(RankedSiblings(path[-1].tree_id, tuple(reversed(path)), tuple(ranked)))
    return sorted(groups, key=lambda g: (g.tree_id, g.depth, g.conversation[-1].message_id))


def counts(messages: list[Message]) -> dict[str, int]:
    roots = root_prompts(messages)
    return {
        "messages": len(messages),
        "trees": len(roots),
        "ift_examples": sum(1 for r in roots if r.ranked),
        "ranked_groups": sum(1 for r in roots if len(r.ranked) >= 2),
    }
