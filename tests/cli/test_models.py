"""sslcli models: the registry's words about a method are the method's real defaults."""

import inspect
import json
import re

from torch import nn
from typer.testing import CliRunner

from sslcli.cli.app import app

runner = CliRunner()


def _number(value: float) -> str:
    """As the descriptions write numbers: 0.2, 1e-6."""
    return f"{value:g}".replace("e-0", "e-")


def latent_truth() -> dict[str, str]:
    """What the latent method really does by default, read from its class and a built model."""
    from sslcli.methods.latent import LatentPredictive
    from sslcli.models.backbones import BackboneOptions, build_backbone

    parameters = inspect.signature(LatentPredictive).parameters
    built = LatentPredictive(build_backbone("tiny-cnn", BackboneOptions()))
    widths = [layer.out_features for layer in built.projector if isinstance(layer, nn.Linear)]
    return {
        "target": parameters["target"].default,
        "expander": "-".join(map(str, widths)),
        "latent_dim": str(parameters["latent_dim"].default),
        "optimizer": LatentPredictive.defaults.optimizer.upper(),
        "lr": _number(LatentPredictive.defaults.lr_per_256),
        "weight_decay": _number(LatentPredictive.defaults.weight_decay),
    }


def test_the_latent_methods_description_states_its_real_defaults() -> None:
    truth = latent_truth()
    assert truth["target"] == "online" and truth["expander"] == "2048-2048-256"
    result = runner.invoke(app, ["models", "--json"])
    assert result.exit_code == 0, result.output
    (latent,) = [e for e in json.loads(result.stdout)["ssl_methods"] if e["name"] == "latent"]
    words = latent["description"]
    assert re.search(r"\((\w+), the default\)", words).group(1) == truth["target"], words
    assert f"expander {truth['expander']}" in words, words
    assert f"z of {truth['latent_dim']} dimensions" in words, words
    assert f"{truth['optimizer']}, lr {truth['lr']} per 256" in words, words
    assert f"wd {truth['weight_decay']}" in words, words
    assert "EMA target" not in words  # the old default, no longer true
