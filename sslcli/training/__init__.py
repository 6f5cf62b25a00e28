"""Training runs: the settings, the views, the observers and the worker of
``train-siamese`` and ``train-latent``."""
