"""Hugging Face transformers interop: PyTorch-layout safetensors, configs and tokenizer files."""
