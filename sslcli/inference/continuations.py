"""The energy of a video's future given its past, under a ``train-latent --pairs future`` run.

x is a clip of the run's K context frames and y the frame h later (``data.clips``); F(x, y) =
min_z E(x, y, z) + lambda R(z) as for images (``methods.latent``). Along a video, F at each
future frame says how surprising that frame is given the K frames h before it: a cut or an
event the past did not foretell stands out as a peak. :func:`write_energy_curve` draws it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sslcli.data.clips import Continuation
from sslcli.data.video import Frames
from sslcli.engine.runtime import Runtime
from sslcli.errors import usage_error
from sslcli.inference.energy import TargetEncoder, embed_with, latent_pair_energies
from sslcli.inference.finite import check_finite
from sslcli.runs.loading import TrainedModel

BATCH = 256


def video_model(model: TrainedModel) -> Continuation:
    """How ``model`` pairs past and future; an error for a model not trained on videos."""
    if model.latent is None or model.continuation is None:
        raise usage_error(
            f"{model.description} was not trained on videos: it has no past-to-future energy",
            "give a run of sslcli train-latent VIDEOS --pairs future",
        )
    return model.continuation


@torch.inference_mode()
def clip_contexts(
    model: TrainedModel, clips: np.ndarray, runtime: Runtime, batch_size: int = BATCH
) -> torch.Tensor:
    """s_x (N, D) of uint8 clips (N, K, S, S, 3), in fp32 on the CPU."""
    from sslcli.eval.features import pixels_to_batch

    latent = model.latent
    assert latent is not None
    latent.to(runtime.device)
    count, frames = clips.shape[:2]
    parts = []
    for start in range(0, count, batch_size):
        chunk = clips[start : start + batch_size]
        flat = chunk.reshape(-1, *clips.shape[2:])
        batch = pixels_to_batch(flat, runtime.device, model.mean, model.std)
        batch = batch.reshape(len(chunk), frames, *batch.shape[1:])
        with runtime.autocast():
            parts.append(latent.context(batch).float().cpu())
    return check_finite(torch.cat(parts), model, "embeddings")


def continuation_energies(
    model: TrainedModel, clips: np.ndarray, futures: np.ndarray, runtime: Runtime
) -> dict[str, torch.Tensor]:
    """F and its parts (N,) of clip i (N, K, S, S, 3) followed by frame i (N, S, S, 3)."""
    context = clip_contexts(model, clips, runtime)
    target = embed_with(model, futures, runtime, TargetEncoder(model.latent), BATCH)
    rows = torch.arange(len(context))
    energies = latent_pair_energies(model, context, target, torch.stack([rows, rows], dim=1))
    for name, values in energies.items():
        check_finite(values, model, "energies" if name == "energy" else name.replace("_", " "))
    return energies


def past_clip(video: Frames, continuation: Continuation, anchor: int) -> np.ndarray:
    """(K, S, S, 3): the K frames of x ending at frame ``anchor``."""
    return np.asarray(video.pixels[continuation.past(anchor)])


@dataclass
class EnergyAlong:
    """F at every future frame of a video that has a past."""

    times: np.ndarray
    """Seconds from the video's start of each future frame y."""
    energies: dict[str, np.ndarray]
    """``energy`` (F), ``energy_at_zero``, ``z_gap``, ``z_norm``, one per time."""


def energy_along(model: TrainedModel, video: Frames, runtime: Runtime) -> EnergyAlong:
    continuation = video_model(model)
    anchors = continuation.anchors(len(video.pixels))
    if not anchors:
        raise usage_error(continuation.too_short(str(video.path), len(video.pixels)))
    clips = np.stack([past_clip(video, continuation, anchor) for anchor in anchors])
    futures = np.asarray(video.pixels[[continuation.future(anchor) for anchor in anchors]])
    energies = continuation_energies(model, clips, futures, runtime)
    times = np.array([continuation.future(anchor) for anchor in anchors]) / continuation.fps
    return EnergyAlong(times, {name: values.numpy() for name, values in energies.items()})


def past_and_future(
    model: TrainedModel, past: Frames, future: Frames, runtime: Runtime
) -> dict[str, float]:
    """F of PAST's last K frames followed by FUTURE, which starts one frame after PAST ends:
    y is FUTURE's frame h - 1 (h frames after PAST's last)."""
    continuation = video_model(model)
    if len(past.pixels) < continuation.context_frames:
        raise usage_error(
            f"{past.path} has {len(past.pixels)} frame(s) at {continuation.fps:g} fps, fewer "
            f"than the model's {continuation.context_frames} context frames",
            "give a longer past clip",
        )
    wanted = continuation.horizon - 1
    if len(future.pixels) <= wanted:
        raise usage_error(
            f"{future.path} lasts {future.duration:g} s, shorter than the model's horizon "
            f"{continuation.horizon_seconds:g} s after the past",
            "give a future clip at least as long as the horizon",
        )
    clip = past_clip(past, continuation, len(past.pixels) - 1)
    energies = continuation_energies(model, clip[None], future.pixels[wanted][None], runtime)
    return {name: float(values[0]) for name, values in energies.items()}


CURVE_SIZE = (720, 300)
MARGIN = (64, 36, 16, 40)
"""Left, top, right, bottom: room for the axes' labels and the title."""
LINE = (33, 102, 172)


def write_energy_curve(path: Path, along: EnergyAlong, title: str) -> None:
    """F against the future frame's time, as a PNG line plot with labelled axes."""
    from PIL import Image, ImageDraw

    from sslcli.engine.atomic import atomic_file
    from sslcli.inference.drawing import BACKGROUND, INK, draw_text

    width, height = CURVE_SIZE
    left, top, right, bottom = MARGIN
    box = (left, top, width - right, height - bottom)
    canvas = Image.new("RGB", CURVE_SIZE, BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    times, values = along.times, along.energies["energy"]
    low, high = float(values.min()), float(values.max())
    high = high if high > low else low + 1e-6
    start, stop = float(times[0]), float(times[-1])
    stop = stop if stop > start else start + 1e-6

    def point(t: float, value: float) -> tuple[float, float]:
        x = box[0] + (t - start) / (stop - start) * (box[2] - box[0])
        y = box[3] - (value - low) / (high - low) * (box[3] - box[1])
        return x, y

    draw.rectangle(box, outline=INK)
    draw.line(
        [point(float(t), float(v)) for t, v in zip(times, values, strict=True)], fill=LINE, width=2
    )
    for fraction in (0, 0.5, 1):
        value = low + fraction * (high - low)
        y = point(start, value)[1]
        draw.line([(box[0] - 4, y), (box[0], y)], fill=INK)
        draw_text(canvas, (box[0] - 6, y), f"{value:.3g}", anchor="rm")
        t = start + fraction * (stop - start)
        x = point(t, low)[0]
        draw.line([(x, box[3]), (x, box[3] + 4)], fill=INK)
        draw_text(canvas, (x, box[3] + 6), f"{t:.2f} s", anchor="ma")
    draw_text(canvas, (box[0], 8), title, anchor="la")
    draw_text(canvas, ((box[0] + box[2]) / 2, height - 14), "time of the future frame", anchor="ma")
    with atomic_file(path) as temporary:
        canvas.save(temporary, format="PNG")


WRONG_KINDS = ("shuffled", "reversed", "other video")
"""The wrong continuations a true one is compared with (:func:`continuation_aucs`)."""


def roc_auc(true: np.ndarray, wrong: np.ndarray) -> float:
    """P(F of a wrong continuation > F of a true one), ties counted half: the ROC-AUC of F
    telling them apart (Mann-Whitney U / (n m)); 0.5 is chance, 1 perfect."""
    true, wrong = np.asarray(true, np.float64), np.asarray(wrong, np.float64)
    above = (wrong[:, None] > true[None, :]).sum() + 0.5 * (wrong[:, None] == true[None, :]).sum()
    return float(above / (len(true) * len(wrong)))


def continuation_aucs(
    model: TrainedModel, videos: list[Frames], runtime: Runtime, seed: int = 0
) -> dict[str, float]:
    """ROC-AUC of F for each video's true continuations against three wrong ones at the same
    anchors: ``shuffled`` (a frame of the same video at least ``h`` frames from the true one),
    ``reversed`` (the frame h BEFORE the clip: the motion run backwards) and ``other video``
    (the same moment of the next video). Anchors without a reversed frame are left out."""
    continuation = video_model(model)
    if len(videos) < 2:
        raise usage_error("comparing continuations needs 2 videos or more (one for 'other')")
    rng = np.random.default_rng(seed)
    h, k = continuation.horizon, continuation.context_frames
    clips, futures = [], {kind: [] for kind in ("true", *WRONG_KINDS)}
    for number, video in enumerate(videos):
        other = videos[(number + 1) % len(videos)]
        length = min(len(video.pixels), len(other.pixels))
        for anchor in continuation.anchors(length):
            before = anchor - k + 1 - h
            if before < 0:
                continue
            true = continuation.future(anchor)
            far = [t for t in range(len(video.pixels)) if abs(t - true) >= h]
            clips.append(past_clip(video, continuation, anchor))
            futures["true"].append(video.pixels[true])
            futures["shuffled"].append(video.pixels[int(rng.choice(far))])
            futures["reversed"].append(video.pixels[before])
            futures["other video"].append(other.pixels[true])
    if not clips:
        raise usage_error("the videos are too short to compare continuations")
    stacked = np.stack(clips)
    energy = {
        kind: continuation_energies(model, stacked, np.stack(frames), runtime)["energy"].numpy()
        for kind, frames in futures.items()
    }
    return {kind: roc_auc(energy["true"], energy[kind]) for kind in WRONG_KINDS}
