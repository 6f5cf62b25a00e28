"""sslcli: a command-line toolkit and Python library for self-supervised learning."""

__version__ = "0.1.0"
