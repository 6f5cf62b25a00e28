"""Files shipped inside the package: the embedded default masked-language model."""
