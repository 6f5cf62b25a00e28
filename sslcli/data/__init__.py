"""Finding and decoding images."""
