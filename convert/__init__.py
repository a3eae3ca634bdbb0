"""Hugging Face Llama checkpoint -> GGUF converter (one module per step; pipeline.py ties them)."""
