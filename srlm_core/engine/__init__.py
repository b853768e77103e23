"""Generation: the backend interface (`backend`), the transformers and vLLM engines behind it,
loading and saving checkpoints (`runtime`), and prompt rendering (`prompts`)."""
