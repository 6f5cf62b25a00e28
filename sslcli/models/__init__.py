"""Backbones (encoders) and heads."""
