"""Masked-language models: fill-mask and MLM training."""
