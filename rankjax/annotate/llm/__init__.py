"""The LLM the local annotation backend runs: Llama in Flax, decoding, GGUF weights."""
