"""Loading what --model names: runs, checkpoints, exports, backbones, transformers models."""

import json
import os
import pickle
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from sslcli.engine.checkpoint import load_checkpoint, resolve_resume
from sslcli.errors import SSLError
from sslcli.runs.loading import load_model, newest_run


def test_a_run_folder_loads_backbone_and_projector_of_its_newest_checkpoint(
    trained_run: Path,
) -> None:
    model = load_model(str(trained_run))
    weights = load_checkpoint(resolve_resume(trained_run)).weights
    assert model.size == 16 and model.method == "simclr" and "step 6" in model.description
    for prefix, module in (("backbone.", model.backbone), ("projector.", model.projector)):
        for name, tensor in module.state_dict().items():
            assert torch.equal(tensor, weights[prefix + name])
    assert model.default_space() == "projector"
    with torch.no_grad():
        assert model.encoder("projector")(torch.randn(3, 3, 16, 16)).shape == (3, 32)
        assert model.encoder("backbone")(torch.randn(3, 3, 16, 16)).shape == (3, 128)


def test_an_encoder_export_loads_the_backbone_alone(trained_run: Path) -> None:
    model = load_model(str(trained_run / "encoder"))
    checkpoint = load_model(str(trained_run))
    assert model.projector is None and model.default_space() == "backbone"
    for name, tensor in checkpoint.backbone.state_dict().items():
        assert torch.equal(model.backbone.state_dict()[name], tensor)
    with pytest.raises(SSLError, match="no projection head"):
        model.encoder("projector")


def test_a_run_without_checkpoints_falls_back_to_its_export(
    trained_run: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    shutil.copytree(trained_run / "encoder", run / "encoder")
    assert "encoder export" in load_model(str(run)).description


def test_a_backbone_name_gives_random_weights_at_the_asked_size() -> None:
    model = load_model("tiny-cnn", size=32)
    assert model.size == 32 and "random weights" in model.description


def test_without_model_the_newest_run_is_picked(trained_run: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    for name in ("old", "new"):
        shutil.copytree(trained_run, runs / name)
    latest = runs / "old" / "checkpoints" / "latest"
    os.utime(latest, (latest.stat().st_atime, latest.stat().st_mtime - 100))
    assert newest_run(runs) == runs / "new"
    assert "runs/new" in load_model(None, runs=runs).description


def test_no_runs_and_unknown_names_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(SSLError, match="no trained run") as error:
        load_model(None, runs=tmp_path / "runs")
    assert "train-siamese" in error.value.hint
    with pytest.raises(SSLError, match="unknown backbone 'tiny-cn'") as error:
        load_model("tiny-cn")
    assert "tiny-cnn" in error.value.message + (error.value.hint or "")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SSLError, match="is not a model"):
        load_model(str(tmp_path / "empty"))


def test_mismatched_weights_are_a_clear_error(trained_run: Path, tmp_path: Path) -> None:
    export = tmp_path / "encoder"
    shutil.copytree(trained_run / "encoder", export)
    config = (export / "config.json").read_text().replace('"tiny-cnn"', '"resnet18"')
    (export / "config.json").write_text(config)
    with pytest.raises(SSLError, match="do not fit"):
        load_model(str(export))


def test_a_transformers_vision_folder_embeds_with_its_processor_settings(tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    config = _tiny_vit_config(transformers)
    torch.manual_seed(0)
    vit = transformers.ViTModel(config)
    vit.save_pretrained(tmp_path / "vit")
    processor = transformers.ViTImageProcessor(
        size={"height": 16, "width": 16}, image_mean=[0.5] * 3, image_std=[0.25] * 3
    )
    processor.save_pretrained(tmp_path / "vit")
    model = load_model(str(tmp_path / "vit"))
    assert model.size == 16 and model.mean == (0.5,) * 3 and model.std == (0.25,) * 3
    images = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        expected = vit.eval()(pixel_values=images).pooler_output
        torch.testing.assert_close(model.encoder("backbone")(images), expected)


def test_an_unreachable_hub_model_is_a_clear_error() -> None:
    pytest.importorskip("transformers")
    with pytest.raises(SSLError, match="cannot load vision model nobody/no-such-model") as error:
        load_model("nobody/no-such-model")
    assert "the model hub cannot be reached" in error.value.message  # HF_HUB_OFFLINE=1
    assert "local folder" in error.value.hint


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("where", ["checkpoint", "encoder"])
def test_a_truncated_weights_file_is_one_sentence_naming_it(
    trained_run: Path, tmp_path: Path, where: str
) -> None:
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    folder = resolve_resume(run) if where == "checkpoint" else run / "encoder"
    _truncate(folder / "model.safetensors")
    with pytest.raises(SSLError) as raised:
        load_model(str(run if where == "checkpoint" else folder))
    assert str(folder / "model.safetensors") in raised.value.message
    assert "damaged" in raised.value.message and "\n" not in raised.value.message


def test_a_damaged_trainer_state_does_not_block_the_weights(
    trained_run: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    _truncate(resolve_resume(run) / "trainer_state.pt")
    model = load_model(str(run))
    weights = load_checkpoint(resolve_resume(trained_run)).weights
    for name, tensor in model.backbone.state_dict().items():
        assert torch.equal(tensor, weights["backbone." + name])


def test_a_pickled_transformers_folder_is_refused_without_running_it(tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    config = _tiny_vit_config(transformers)
    folder = tmp_path / "vit"
    transformers.ViTModel(config).save_pretrained(folder, safe_serialization=False)
    (folder / "model.safetensors").unlink(missing_ok=True)
    marker = tmp_path / "ran"
    (folder / "pytorch_model.bin").write_bytes(
        pickle.dumps(_Payload(str(marker)))  # a pickle that would create a file when loaded
    )
    with pytest.raises(SSLError) as raised:
        load_model(str(folder))
    assert "pytorch_model.bin" in raised.value.message
    assert "non-tensor objects; refusing" in raised.value.message
    assert not marker.exists()


class _Payload:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple:
        return (open, (self.path, "w"))


def test_a_missing_run_folder_is_named_at_once_with_the_newest_run(
    trained_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(trained_run, tmp_path / "runs" / "real")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SSLError, match="no such model folder: runs/digits") as raised:
        load_model("runs/digits")  # one slash, like a hub id, but runs/ is a folder here
    assert "the newest run is runs/real" in raised.value.hint
    assert raised.value.exit_code == 2


@pytest.mark.parametrize("name", ["mean", "std"])
def test_a_checkpoint_that_does_not_record_its_normalisation_is_refused(
    trained_run: Path, tmp_path: Path, name: str
) -> None:
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    config_file = resolve_resume(run) / "config.json"
    config = json.loads(config_file.read_text())
    assert len(config[name]) == 3  # every run records it
    del config[name]
    config_file.write_text(json.dumps(config))
    with pytest.raises(SSLError, match=f"does not record the {name}"):
        load_model(str(run))


def _tiny_vit_config(transformers: Any) -> Any:
    return transformers.ViTConfig(
        image_size=16, patch_size=8, hidden_size=24, num_hidden_layers=1,
        num_attention_heads=2, intermediate_size=32,
    )  # fmt: skip
