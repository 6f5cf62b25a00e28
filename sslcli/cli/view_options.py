"""Options that change how views are drawn, shared by ``augment`` and the trainers."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from sslcli.errors import usage_error

CropScale = Annotated[
    str | None, typer.Option(help="Crop area range as a fraction of the image, e.g. 0.2,1.0.")
]
CropRatio = Annotated[str | None, typer.Option(help="Crop aspect-ratio range, e.g. 0.75,1.333.")]
Jitter = Annotated[
    str | None,
    typer.Option(help="Colour jitter: one strength or brightness,contrast,saturation,hue."),
]
JitterProb = Annotated[float | None, typer.Option(help="Probability of colour jitter.")]
FlipProb = Annotated[float | None, typer.Option(help="Probability of a horizontal flip.")]
GrayscaleProb = Annotated[float | None, typer.Option(help="Probability of grayscale.")]
BlurProb = Annotated[float | None, typer.Option(help="Probability of Gaussian blur.")]
SolarizeProb = Annotated[float | None, typer.Option(help="Probability of solarisation.")]
Rotation = Annotated[
    float | None,
    typer.Option(
        help="Largest rotation in degrees: each view turns by a random angle in +-DEG "
        "\\[default: 0].",
        show_default=False,
    ),
]


def _pair(text: str | None, option: str) -> tuple[float, float] | None:
    if text is None:
        return None
    parts = text.split(",")
    try:
        low, high = (float(part) for part in parts)
    except ValueError:
        raise usage_error(f"{option} takes two numbers like 0.2,1.0, got {text!r}") from None
    if not 0 < low <= high:
        raise usage_error(f"{option} needs 0 < low <= high, got {text!r}")
    return low, high


def _jitter(text: str | None) -> tuple[float, float, float, float] | None:
    if text is None:
        return None
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        values = []
    if len(values) == 1:
        values = [values[0], values[0], values[0], min(values[0] / 4, 0.5)]
    if len(values) != 4 or min(values) < 0 or values[3] > 0.5:
        raise usage_error(
            f"--jitter takes one strength or brightness,contrast,saturation,hue; got {text!r}",
            "e.g. --jitter 0.4 (hue = strength/4) or --jitter 0.4,0.4,0.2,0.1 (hue at most 0.5)",
        )
    return values[0], values[1], values[2], values[3]


def _probability(value: float | None, option: str) -> float | None:
    if value is not None and not 0 <= value <= 1:
        raise usage_error(f"{option} is a probability between 0 and 1, got {value}")
    return value


def _rotation(value: float | None) -> float | None:
    if value is not None and not 0 <= value <= 180:
        raise usage_error(f"--rotation is a largest angle from 0 to 180 degrees, got {value}")
    return value


def view_changes(
    crop_scale: str | None,
    crop_ratio: str | None,
    jitter: str | None,
    jitter_prob: float | None,
    flip_prob: float | None,
    grayscale_prob: float | None,
    blur_prob: float | None,
    solarize_prob: float | None,
    rotation: float | None,
) -> dict[str, Any]:
    """The recipe fields the options set (validated); options left out are absent."""
    changes = {
        "crop_scale": _pair(crop_scale, "--crop-scale"),
        "crop_ratio": _pair(crop_ratio, "--crop-ratio"),
        "jitter": _jitter(jitter),
        "jitter_prob": _probability(jitter_prob, "--jitter-prob"),
        "flip_prob": _probability(flip_prob, "--flip-prob"),
        "grayscale_prob": _probability(grayscale_prob, "--grayscale-prob"),
        "blur_prob": _probability(blur_prob, "--blur-prob"),
        "solarize_prob": _probability(solarize_prob, "--solarize-prob"),
        "rotation": _rotation(rotation),
    }
    return {name: value for name, value in changes.items() if value is not None}
