"""Models in and out: the bundled weights, Hugging Face folders, nanoGPT/minGPT checkpoints, safetensors files
and tokenizers."""
