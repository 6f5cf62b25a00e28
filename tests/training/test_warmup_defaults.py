"""The default warm-up a run resolves to (issue 18, item 5).

VICReg with the small-grey-image recipe (small-cnn, ``--preset digits``, expander 1024,
AdamW lr 0.005 per 256) collapsed into a few dimensions at 10 epochs with the general
default of one warm-up epoch (15 steps on 4000 images); with 3 it trained on the views of
the former square cache but collapsed once in three runs on views cut from the whole stored
image; with 5 it trained in all three (benchmarks/RESULTS.md, "VICReg's warm-up on small grey
images").
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from sslcli.training.config import TrainingRequest, resolve_config


def _request(method: str, epochs: int, warmup_epochs: int | None = None) -> TrainingRequest:
    return TrainingRequest(
        data="images", method=method, backbone="small-cnn", size=32, small_images=None,
        preset="digits", view_changes={}, epochs=epochs, batch_size=256, optimizer="adamw",
        lr_per_256=0.005, weight_decay=1e-4, warmup_epochs=warmup_epochs,
        method_options={"hidden_dim": 1024, "projection_dim": 1024}, seed=0,
        precision="fp32", knn_every=100, eval_dir=None, online_probe=False,
        checkpoint_every=0, stop_on_collapse=False, strict=False, cache_dir="cache",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("epochs", "warmup"),
    [(10, 5), (15, 5), (20, 5), (40, 5), (60, 6), (100, 10), (400, 10), (6, 3), (2, 1), (1, 0)],
)
def test_vicreg_warms_up_at_least_five_epochs_or_half_of_a_shorter_run(
    epochs: int, warmup: int
) -> None:
    assert resolve_config(_request("vicreg", epochs), 1).warmup_epochs == warmup


@pytest.mark.parametrize("method", ["simclr", "moco", "byol", "simsiam", "barlow"])
def test_the_other_methods_keep_a_tenth_of_the_run(method: str) -> None:
    for epochs, warmup in ((10, 1), (40, 4), (100, 10)):
        request = replace(_request(method, epochs), method_options={"hidden_dim": 64})
        assert resolve_config(request, 1).warmup_epochs == warmup


def test_a_warmup_given_is_kept() -> None:
    assert resolve_config(_request("vicreg", 10, warmup_epochs=1), 1).warmup_epochs == 1
    assert resolve_config(_request("vicreg", 10, warmup_epochs=0), 1).warmup_epochs == 0
