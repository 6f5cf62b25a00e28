"""Augmented views: batched ops with independent random parameters per sample, any device."""
