"""LiveCodeBench prompts, generation backends (transformers, vLLM), the generation entrypoint, release discovery."""
