"""Summed log-probability of a reply given its conversation, log p(y|x), under a causal LM.

The conversation and the reply are formatted with the model's own chat template, as SFT
trains it (TRL's prompt/completion format): the reply's tokens are what the full
conversation adds after the generation prompt, end-of-turn tokens included. Only those
tokens are scored. Forward passes in eval mode without gradients, length-sorted batches,
and the vocabulary projection taken at the reply positions only, so memory is bounded by
the batch and not by context length x vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from ..errors import SrlmError


@dataclass(frozen=True)
class Encoded:
    ids: list[int]
    reply_start: int   # index in ids of the reply's first token


@dataclass(frozen=True)
class Scored:
    tokens: int        # reply tokens scored
    logprob: float     # their summed log-probability (natural log)


def encode(tokenizer, conversation: Sequence[dict], reply: str) -> Encoded:
    """conversation: [{role, content}, ...] ending with the user turn the reply answers."""
    context = tokenizer.apply_chat_template(list(conversation), tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template([*conversation, {"role": "assistant", "content": reply}], tokenize=False)
    if not full.startswith(context):
        # A template that rewrites earlier turns once a reply follows leaves no clean reply span to score.
        raise SrlmError("the chat template renders the conversation differently once the reply is added, so the "
                        "reply's tokens cannot be told apart; use a model whose template appends turns")
    head = tokenizer(context, add_special_tokens=False).input_ids
    ids = tokenizer(full, add_special_tokens=False).input_ids
    # Tokens can merge across the boundary; the reply starts where the two tokenisations part.
    start = next((i for i, (a, b) in enumerate(zip(head, ids)) if a != b), len(head))
    return Encoded(ids, start)


@torch.no_grad()
def score(model, items: Sequence[Encoded], *, batch_size: int, pad_id: int) -> list[Scored]:
    """Summed log p of each item's reply tokens, in the order of `items`."""
    model.eval()
    head, device = model.get_output_embeddings(), next(model.parameters()).device
    order = sorted(range(len(items)), key=lambda i: len(items[i].ids))
    out: dict[int, Scored] = {}
    for begin in range(0, len(order), batch_size):
        batch = [items[i] for i in order[begin:begin + batch_size]]
        width = max(len(e.ids) for e in batch)
        ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        targets = torch.zeros((len(batch), width), dtype=torch.bool)   # positions whose next token is the reply's
        for row, e in enumerate(batch):   # right padding: every sequence starts at position 0
            ids[row, :len(e.ids)] = torch.tensor(e.ids)
            mask[row, :len(e.ids)] = 1
            targets[row, e.reply_start - 1:len(e.ids) - 1] = True
        hidden = model.base_model(input_ids=ids.to(device), attention_mask=mask.to(device)).last_hidden_state
        logits = head(hidden[targets.to(device)]).float()
        labels = ids[:, 1:][targets[:, :-1]].to(device)
        token_logprobs = logits.log_softmax(-1).gather(1, labels[:, None]).squeeze(1).cpu()
        counts = targets.sum(1).tolist()
        for i, piece in zip(order[begin:begin + batch_size], token_logprobs.split(counts)):
            out[i] = Scored(len(piece), float(piece.double().sum()))
    return [out[i] for i in range(len(items))]
