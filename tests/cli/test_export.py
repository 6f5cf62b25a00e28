"""sslcli export: every format loads in its own library (strictly) and gives sslcli's features;
the model card's snippets are run as written."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from sslcli.cli.app import app
from sslcli.data.cache import square_resize
from sslcli.data.normalization import normalize
from sslcli.engine.checkpoint import resolve_resume
from sslcli.inference.model_card import IMAGE_PLACEHOLDER
from sslcli.models.backbones import BackboneOptions, build_backbone
from sslcli.runs.layout import export_encoder
from sslcli.runs.loading import load_model

runner = CliRunner()
PHOTO = Path(__file__).resolve().parents[2] / "sample_data" / "photos" / "chelsea.jpg"


def _encoder_run(
    folder: Path, backbone: str, size: int, small: bool, patch: int | None = None
) -> Path:
    """A run folder holding only an ``encoder/`` of ``backbone``, its weights (BatchNorm
    statistics included) moved away from any library's initialisation."""
    model = build_backbone(backbone, BackboneOptions(small, size, patch))
    generator = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if tensor.is_floating_point():
                noise = torch.randn(tensor.shape, generator=generator) * 0.05
                tensor.add_(noise).abs_() if "running_var" in name else tensor.add_(noise)
    description = {
        "backbone": backbone,
        "small_images": small,
        "patch_size": patch,
        "out_dim": model.out_dim,
        "image_size": size,
        "mean": [0.5, 0.4, 0.3],
        "std": [0.2, 0.25, 0.3],
        "method": "simclr",
    }
    export_encoder(folder, model, description)
    return folder


def _export(run: Path, out: Path, *args: str) -> dict:
    result = runner.invoke(app, ["export", str(run), "--out", str(out), "--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _snippets(card: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", card, flags=re.DOTALL)


def _run_card(out: Path) -> dict:
    """Run the card's two snippets as written (the image name aside) and return their names."""
    load, embed = _snippets((out / "README.md").read_text())
    names: dict = {}
    exec(load, names)
    exec(embed.replace(IMAGE_PLACEHOLDER, str(PHOTO)), names)
    return names


def _sslcli_features(run: Path, images: torch.Tensor, space: str = "backbone") -> np.ndarray:
    with torch.inference_mode():
        return load_model(str(run)).encoder(space)(images).numpy()


def _as_array(features: object) -> np.ndarray:
    return features.detach().numpy() if isinstance(features, torch.Tensor) else features


@pytest.mark.parametrize(
    ("backbone", "size", "small"), [("resnet18", 32, True), ("resnet18", 64, False)]
)
def test_torchvision_export_loads_strictly_into_torchvision_and_gives_the_same_features(
    tmp_path: Path, backbone: str, size: int, small: bool
) -> None:
    import torchvision

    run = _encoder_run(tmp_path / "run", backbone, size, small)
    report = _export(run, tmp_path / "out", "--format", "torchvision")
    assert report["files"] == ["README.md", "model.pth"] and report["dimensions"] == 512
    weights = torch.load(tmp_path / "out" / "model.pth", weights_only=True)
    plain = set(getattr(torchvision.models, backbone)().state_dict())
    assert set(weights) == plain - {"fc.weight", "fc.bias"}  # the classifier alone is left out
    names = _run_card(tmp_path / "out")  # load_state_dict is strict by default
    expected = _sslcli_features(run, names["image"])
    np.testing.assert_allclose(_as_array(names["features"]), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    ("backbone", "size", "patch"), [("vit-tiny", 32, 4), ("timm:resnet10t", 64, None)]
)
def test_timm_export_is_rebuilt_by_timm_alone_with_the_same_features(
    tmp_path: Path, backbone: str, size: int, patch: int | None
) -> None:
    import timm
    from safetensors.torch import load_file

    run = _encoder_run(tmp_path / "run", backbone, size, False, patch)
    out = tmp_path / "out"
    report = _export(run, out, "--format", "timm")
    assert {"config.json", "model.safetensors", "README.md"} <= set(report["files"])
    names = _run_card(out)
    expected = _sslcli_features(run, names["image"])
    np.testing.assert_allclose(_as_array(names["features"]), expected, atol=1e-5, rtol=1e-5)
    # the same weights load strictly into a plainly built timm model
    config = json.loads((out / "config.json").read_text())
    arguments = {**config.get("model_args", {}), "num_classes": 0}
    plain = timm.create_model(config["architecture"], **arguments)
    plain.load_state_dict(load_file(out / "model.safetensors"), strict=True)
    # and timm's own preprocessing is the run's: its size, mean and std, no crop margin
    data = timm.data.resolve_data_config({}, model=names["model"])
    assert data["input_size"] == (3, size, size) and data["crop_pct"] == 1.0
    assert data["mean"] == pytest.approx((0.5, 0.4, 0.3)) and data["std"][1] == pytest.approx(0.25)


@pytest.mark.parametrize(
    ("backbone", "size", "small", "patch"),
    [("resnet18", 32, True, None), ("vit-tiny", 32, False, 4), ("tiny-cnn", 16, False, None)],
)
def test_safetensors_export_loads_back_into_sslcli_and_by_the_cards_lines(
    tmp_path: Path, backbone: str, size: int, small: bool, patch: int | None
) -> None:
    run = _encoder_run(tmp_path / "run", backbone, size, small, patch)
    out = tmp_path / "out"
    _export(run, out, "--format", "safetensors")
    images = normalize(torch.rand(3, 3, size, size))
    np.testing.assert_array_equal(_sslcli_features(out, images), _sslcli_features(run, images))
    names = _run_card(out)
    expected = _sslcli_features(run, names["image"])
    np.testing.assert_allclose(_as_array(names["features"]), expected, atol=1e-5, rtol=1e-5)


def test_onnx_export_matches_torch_on_real_images_in_every_space_with_any_batch(
    trained_run: Path, tmp_path: Path
) -> None:
    import onnx
    import onnxruntime

    from sslcli.data.images import load_image

    photos = sorted((PHOTO.parent).glob("*.jpg"))[:7]
    pixels = np.stack([square_resize(load_image(path), 16) for path in photos])
    images = normalize(torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255)
    for space, dimensions in (("backbone", 128), ("projector", 32)):
        out = tmp_path / space
        report = _export(trained_run, out, "--format", "onnx", "--space", space)
        assert report["dimensions"] == dimensions and report["onnx_largest_difference"] < 1e-4
        session = onnxruntime.InferenceSession(str(out / "model.onnx"))
        expected = _sslcli_features(trained_run, images, space)
        for batch in (1, 7):  # the batch axis is free
            (got,) = session.run(None, {"images": images[:batch].numpy()})
            assert np.abs(got - expected[:batch]).max() < 1e-4
        stored = onnx.load(str(out / "model.onnx")).metadata_props
        metadata = {prop.key: prop.value for prop in stored}
        config = json.loads((trained_run / "config.json").read_text())
        assert json.loads(metadata["mean"]) == config["mean"]
        assert metadata["image_size"] == "16" and metadata["space"] == space
        assert "centre-cropped to 16 x 16" in metadata["preprocessing"]
    names = _run_card(tmp_path / "projector")
    expected = _sslcli_features(trained_run, names["image"], "projector")
    assert np.abs(names["features"] - expected).max() < 1e-4


def test_the_card_states_the_run_and_what_was_measured(trained_run: Path, tmp_path: Path) -> None:
    _export(trained_run, tmp_path / "out")
    card = (tmp_path / "out" / "README.md").read_text()
    result = json.loads((trained_run / "result.json").read_text())
    config = json.loads((resolve_resume(trained_run) / "config.json").read_text())
    assert "trained with sslcli (simclr)" in card
    assert f"| training | 3 epochs, {result['step']} steps, batch 16 at 16 px" in card
    assert config["data"] in card and config["images"] in card
    assert f"{result['knn_accuracy']:.4g}" in card and "floor" in card
    assert "normalised with mean" in card


def test_the_cards_preprocessing_gives_the_pixels_sslcli_embeds(tmp_path: Path) -> None:
    """The card's torchvision transform resizes the photo once; sslcli stores it first (a
    shorter side of 8/7 x the size) and resizes that: the pixels differ by a few levels."""
    from torchvision import transforms

    from sslcli.data.store import open_store

    size = 64
    card = transforms.Compose([transforms.Resize(size), transforms.CenterCrop(size)])
    ours = open_store([PHOTO], size * 8 // 7, tmp_path / "cache").pixels(0)
    theirs = np.asarray(card(Image.open(PHOTO).convert("RGB")), dtype=np.float32)
    embedded = square_resize(Image.fromarray(ours), size).astype(np.float32)
    assert np.abs(theirs - embedded).mean() < 5.0  # of 255 (3.4 on this photo)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--format", "timm"], "resnet18 is not a timm model"),
        (["--format", "torchvision", "--space", "projector"], "holds the backbone alone"),
        (["--format", "pickle"], "unknown format 'pickle'"),
        (["--space", "patch", "--format", "onnx"], "has no patch tokens"),
    ],
)
def test_formats_a_model_cannot_take_are_refused_before_writing(
    tmp_path: Path, args: list[str], message: str
) -> None:
    run = _encoder_run(tmp_path / "run", "resnet18", 32, True)
    result = runner.invoke(app, ["export", str(run), "--out", str(tmp_path / "out"), *args])
    assert result.exit_code == 2 and message in " ".join(result.output.split())
    assert not (tmp_path / "out").exists()


def test_a_vit_is_refused_as_torchvision_with_the_formats_it_takes(tmp_path: Path) -> None:
    run = _encoder_run(tmp_path / "run", "vit-tiny", 32, False, 4)
    out = str(tmp_path / "o")
    result = runner.invoke(app, ["export", str(run), "-o", out, "-f", "torchvision"])
    output = " ".join(result.output.split())
    assert result.exit_code == 2 and "vit-tiny is not a torchvision model" in output
    assert "--format timm" in output


def test_an_existing_export_is_kept_unless_overwrite(tmp_path: Path) -> None:
    run = _encoder_run(tmp_path / "run", "tiny-cnn", 16, False)
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    result = runner.invoke(app, ["export", str(run), "--out", str(out)])
    assert result.exit_code == 2 and "already exists" in result.output
    assert (out / "mine.txt").read_text() == "keep me"
    _export(run, out, "--overwrite")
    written = sorted(p.name for p in out.iterdir())
    assert written == ["README.md", "config.json", "model.safetensors"]
    missing = runner.invoke(app, ["export", str(tmp_path / "nope"), "--out", str(tmp_path / "x")])
    assert missing.exit_code == 2 and "no such run folder" in missing.output


def test_the_readme_lines_load_the_exports_they_name(tmp_path: Path) -> None:
    """README's "export" section, its snippets run as written on exports at the paths they
    name (those paths pointed at fresh exports)."""
    import textwrap

    import onnxruntime
    import timm
    import torchvision

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("### export")[1].split("\n### ")[0]
    blocks = [textwrap.dedent(block) for block in re.findall(r"```python\n(.*?)```", section, re.S)]
    assert len(blocks) == 3
    exports = {
        "runs/resnet18-tv": ("resnet18", 64, False, None, "torchvision"),
        "runs/vit-timm": ("vit-tiny", 32, False, 4, "timm"),
        "runs/digits-onnx": ("tiny-cnn", 16, False, None, "onnx"),
    }
    for block in blocks:
        (folder,) = [name for name in exports if name in block]
        backbone, size, small, patch, format_ = exports[folder]
        run = _encoder_run(tmp_path / format_, backbone, size, small, patch)
        out = tmp_path / f"{format_}-out"
        _export(run, out, "--format", format_)
        images = normalize(torch.rand(2, 3, size, size))
        names = {"torch": torch, "torchvision": torchvision, "timm": timm}
        names |= {"onnxruntime": onnxruntime, "images": images.numpy()}
        exec(block.replace(folder, str(out)), names)
        features = names["features"] if "features" in names else names["model"].eval()(images)
        expected = _sslcli_features(run, images)
        np.testing.assert_allclose(_as_array(features), expected, atol=1e-4, rtol=1e-4)
