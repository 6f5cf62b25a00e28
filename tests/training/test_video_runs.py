"""Training on videos end to end: train-latent's past-future pairs, exact resume, F along a
video, the two-clip energy, sweeps after a moment, bad videos, and views of the frames, on
the synthetic sample videos (``sample_data/videos``, made by ``sample_data/make_videos.py``)
and held-out ones made here."""

import json
import shutil
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from sslcli.cli.app import app
from sslcli.data.video import decode_video, decoded_videos, scan_videos
from sslcli.engine.checkpoint import load_checkpoint, resolve_resume
from sslcli.engine.runtime import make_runtime
from sslcli.inference.continuations import (
    CURVE_SIZE,
    continuation_aucs,
    continuation_energies,
    energy_along,
)
from sslcli.runs.loading import load_model
from tests.conftest import SAMPLE_DATA
from tests.training.rewound import assert_resumes_to_the_same_weights, rewound_copy

sys.path.insert(0, str(SAMPLE_DATA))
import make_videos

runner = CliRunner()
VIDEOS = SAMPLE_DATA / "videos"
OTHER_VIDEO_AUC = 0.75
"""F of the true future against the same moment of another held-out video: at least this
ROC-AUC after the benchmark's training (measured 0.89 with seed 0, benchmarks/RESULTS.md)."""


def _options(work: Path, out: str, *extra: str) -> list[str]:
    return [
        "--pairs", "future", "--backbone", "tiny-cnn", "--size", "32", "--batch-size", "32",
        "--gpus", "0", "--cache-dir", str(work / "cache"), "--out", str(work / out),
        "--projector-hidden-dim", "128", "--projector-dim", "64", "--latent-dim", "4", *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def video_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 epochs on the 12 sample videos: 408 pairs of 2 frames and the frame 0.5 s later."""
    work = tmp_path_factory.mktemp("video-run")
    result = runner.invoke(
        app, ["train-latent", str(VIDEOS), *_options(work, "run", "--epochs", "8")]
    )
    assert result.exit_code == 0, result.output
    return work / "run"


@pytest.fixture(scope="module")
def held_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 videos the run never saw: other digits, colours, starts and speeds."""
    folder = tmp_path_factory.mktemp("held-out")
    make_videos.make_videos(SAMPLE_DATA / "digits", folder, seed=1001)
    return folder


def test_a_video_run_records_its_pairs_and_its_model_pairs_past_and_future_alike(
    video_run: Path,
) -> None:
    config = json.loads((video_run / "config.json").read_text())
    assert (config["pairs"], config["fps"], config["horizon"]) == ("future", 10.0, 0.5)
    assert config["method_options"]["context_frames"] == 2
    fingerprint = load_checkpoint(resolve_resume(video_run)).config["images"]
    assert fingerprint.startswith("408 pairs at 10 fps, 12 videos"), fingerprint
    model = load_model(str(video_run))
    assert model.continuation is not None
    assert (model.continuation.context_frames, model.continuation.horizon) == (2, 5)
    views = Image.open(video_run / "views.png")  # the anchor frame, the 2 past frames, y
    assert views.size[0] == 4 + 4 * (128 + 4)


def _held_out_aucs(work: Path, sets: int, held_out: Path, *extra: str) -> dict[str, float]:
    """Train on ``sets`` x 12 videos (make_videos seeds 1...), batch 64, expander 256-256-64,
    z of 16 and ``extra``; F's ROC-AUCs on the 12 ``held_out`` videos."""
    for seed in range(1, sets + 1):
        make_videos.make_videos(SAMPLE_DATA / "digits", work / "train" / f"s{seed}", seed)
    options = _options(work, "run", "--batch-size", "64", "--projector-hidden-dim", "256")
    options += ["--latent-dim", "16", *extra]
    result = runner.invoke(app, ["train-latent", str(work / "train"), *options])
    assert result.exit_code == 0, result.output
    model = load_model(str(work / "run"))
    videos, _, failures = decoded_videos(scan_videos(held_out), 10.0, 32, work / "cache")
    assert not failures and len(videos) == 12
    return continuation_aucs(model, videos, make_runtime("cpu", "fp32", 0))


@pytest.mark.slow
def test_f_ranks_the_true_future_below_another_videos_on_held_out_videos(
    tmp_path: Path, held_out: Path
) -> None:
    """The benchmark's setting (benchmarks/continuation_quality.py): 72 training videos."""
    aucs = _held_out_aucs(tmp_path, 6, held_out, "--epochs", "10")
    assert aucs["other video"] >= OTHER_VIDEO_AUC, aucs
    # not asserted: with the tiny CNN a shuffled or reversed future of the same video is
    # about as likely as the true one (AUC near 0.5, benchmarks/RESULTS.md); keypoint-cnn
    # tells them apart (the next test)


SHUFFLED_AUC = 0.6
REVERSED_AUC = 0.55
"""With keypoint-cnn and z: at least these ROC-AUCs for the true future against the same
video's future at another moment and against the frame one horizon before the clip
(measured over 3 seeds on 24 held-out videos: 0.655-0.680 and 0.581-0.630,
benchmarks/RESULTS.md, "Where the digit is")."""


@pytest.mark.slow
def test_with_keypoints_f_ranks_the_true_future_below_a_shuffled_or_reversed_one(
    tmp_path: Path, held_out: Path
) -> None:
    """The benchmark's keypoint-cnn setting: 36 training videos, 30 epochs, LARS lr 1.0."""
    extra = ("--epochs", "30", "--lr", "1.0", "--backbone", "keypoint-cnn")
    aucs = _held_out_aucs(tmp_path, 3, held_out, *extra)
    assert aucs["shuffled"] >= SHUFFLED_AUC and aucs["reversed"] >= REVERSED_AUC, aucs


def test_resuming_a_video_run_trains_the_same_weights(tmp_path: Path) -> None:
    videos = tmp_path / "videos"
    shutil.copytree(VIDEOS / "bounce", videos)
    every = ("--checkpoint-every", "1", "--fps", "2", "--horizon", "1s", "--batch-size", "16")
    options = _options(tmp_path, "run", "--epochs", "2", *every)
    result = runner.invoke(app, ["train-latent", str(videos), *options])
    assert result.exit_code == 0, result.output
    # 8 videos x (8 frames at 2 fps - 2 context - 2 horizon + 1) = 40 pairs: 2 steps an epoch
    final = load_checkpoint(resolve_resume(tmp_path / "run"))
    assert final.config["step"] == 4
    rewound_copy(tmp_path / "run", tmp_path / "again", last_kept=3, removed=4)
    options = _options(tmp_path, "again", "--epochs", "2", *every)
    resumed = runner.invoke(
        app, ["train-latent", str(videos), *options, "--resume", str(tmp_path / "again")]
    )
    assert resumed.exit_code == 0, resumed.output
    again = load_checkpoint(resolve_resume(tmp_path / "again")).weights
    for name, tensor in final.weights.items():
        torch.testing.assert_close(again[name], tensor, rtol=0, atol=0, msg=name)


def _frame_options(work: Path, out: str, *extra: str) -> list[str]:
    """Views of the frames at 2 fps: 8 of each 4 s sample video, 4 steps an epoch of 8 videos."""
    return [
        "--backbone", "tiny-cnn", "--size", "32", "--batch-size", "16", "--gpus", "0",
        "--fps", "2", "--cache-dir", str(work / "cache"), "--out", str(work / out),
        "--projector-hidden-dim", "64", "--projector-dim", "32", *extra,
    ]  # fmt: skip


def test_views_of_video_frames_train_an_encoder_that_resumes_exactly_and_embeds(
    tmp_path: Path,
) -> None:
    videos = tmp_path / "videos"
    shutil.copytree(VIDEOS / "bounce", videos)
    options = _frame_options(tmp_path, "run", "--epochs", "1", "--checkpoint-every", "1")
    result = runner.invoke(app, ["train-siamese", str(videos), *options])
    assert result.exit_code == 0, result.output
    run = tmp_path / "run"
    config = json.loads((run / "config.json").read_text())
    assert (config["pairs"], config["fps"], config["horizon"]) == ("views", 2.0, None)
    fingerprint = load_checkpoint(resolve_resume(run)).config["images"]
    assert fingerprint.startswith("64 frames at 2 fps, 8 videos"), fingerprint
    with Image.open(run / "views.png") as sheet:  # each frame beside its 2 views
        assert sheet.width == 4 + 3 * (128 + 4)
    assert_resumes_to_the_same_weights("train-siamese", run, tmp_path / "again", 4)
    # embed reads the videos at the run's rate: one row per frame
    out = tmp_path / "frames.npy"
    embedded = runner.invoke(app, ["embed", str(videos), "--model", str(run), "-o", str(out)])
    assert embedded.exit_code == 0, embedded.output
    assert len(np.load(out)) == 64
    # train-latent's views objective reads the frames the same way
    latent = _frame_options(tmp_path, "latent", "--epochs", "1", "--latent-dim", "4", "--json")
    trained = runner.invoke(app, ["train-latent", str(videos), *latent])
    assert trained.exit_code == 0, trained.output
    assert json.loads(trained.stdout)["step"] == 4
    # one video file is a folder of one; too few frames for a batch is one sentence
    one = videos / "1_049.mp4"
    few = runner.invoke(app, ["train-siamese", str(one), *_frame_options(tmp_path, "one")])
    assert few.exit_code == 2, few.output
    said = " ".join(few.stderr.split())
    assert "8 frame(s) at 2 fps in the 1 usable video(s) of" in said, said
    assert "fewer than --batch-size 16" in said, said
    assert not (tmp_path / "one" / "checkpoints").exists()


def test_energy_along_a_video_gives_f_at_every_future_frame_and_a_curve(
    video_run: Path, tmp_path: Path
) -> None:
    video = VIDEOS / "bounce" / "1_049.mp4"
    plot = tmp_path / "curve.png"
    result = runner.invoke(
        app, ["energy", str(video), "--model", str(video_run), "--plot", str(plot), "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    # 40 frames: the first future is frame 1 + 5 (2 context frames, 0.5 s ahead)
    assert len(report["times"]) == len(report["energy"]) == 34
    assert report["times"][0] == pytest.approx(0.6) and report["times"][-1] == pytest.approx(3.9)
    model = load_model(str(video_run))
    along = energy_along(model, decode_video(video, 10.0, 32), make_runtime("cpu", "fp32", 0))
    np.testing.assert_allclose(report["energy"], along.energies["energy"], rtol=1e-5)
    assert all(
        f <= e + 1e-7 for f, e in zip(report["energy"], report["energy_at_zero"], strict=True)
    )
    with Image.open(plot) as image:
        assert image.size == CURVE_SIZE
    wrong = runner.invoke(app, ["energy", str(video), "--model", str(video_run), "--horizon", "1s"])
    assert wrong.exit_code == 2 and "predicts 0.5 s ahead, not --horizon 1s" in wrong.stderr


def test_the_energy_of_two_clips_scores_the_futures_frame_one_horizon_after_the_past(
    video_run: Path, tmp_path: Path
) -> None:
    spec = make_videos.video_specs()[0]
    frames = make_videos.render(spec, SAMPLE_DATA / "digits")
    past, future = tmp_path / "past.mp4", tmp_path / "future.mp4"
    make_videos.write_video(frames[:20], past)
    make_videos.write_video(frames[20:], future)
    result = runner.invoke(
        app, ["energy", str(past), str(future), "--model", str(video_run), "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    model, runtime = load_model(str(video_run)), make_runtime("cpu", "fp32", 0)
    decoded_past, decoded_future = decode_video(past, 10.0, 32), decode_video(future, 10.0, 32)
    clip = np.asarray(decoded_past.pixels[-2:])[None]
    # y is 0.5 s after the past's last frame: the future's 5th frame (index 4)
    for index, expected in ((4, True), (0, False)):
        energy = continuation_energies(model, clip, decoded_future.pixels[index][None], runtime)
        assert (abs(float(energy["energy"][0]) - report["energy"]) < 1e-5) is expected, index
    short = tmp_path / "short.mp4"
    make_videos.write_video(frames[20:23], short)
    too_short = runner.invoke(app, ["energy", str(past), str(short), "--model", str(video_run)])
    assert too_short.exit_code == 2 and "shorter than the model's horizon 0.5 s" in too_short.stderr


def test_a_sweep_after_a_moment_of_a_video_matches_gallery_frames(
    video_run: Path, tmp_path: Path
) -> None:
    fork = VIDEOS / "fork" / "0_000_left.mp4"
    grid = tmp_path / "sweep.png"
    command = ["sweep", str(fork), "--at", "1.5s", "--gallery", str(VIDEOS / "fork")]
    result = runner.invoke(
        app, [*command, "--model", str(video_run), "--grid", str(grid), "--json", "--top", "3"]
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["rows"]
    assert len(rows) == 8 and all(len(row["matches"]) == 3 for row in rows)
    assert all("@" in name and name.endswith("s") for row in rows for name in row["matches"])
    assert Image.open(grid).size[0] > 4 * 96
    early = runner.invoke(app, [*command, "--model", str(video_run), "--at", "0s"])
    assert early.exit_code == 2 and "give --at 0.1s or later" in early.stderr
    image = runner.invoke(
        app,
        [
            "sweep",
            str(SAMPLE_DATA / "photos" / "coins.jpg"),
            "--gallery",
            str(VIDEOS),
            "--model",
            str(video_run),
        ],
    )
    assert image.exit_code == 2 and "predicts from clips of 2 frames" in image.stderr


def _audio_only(path: Path) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mp2", rate=16000)
        samples = (np.sin(np.arange(16000) / 10) * 3000).astype(np.int16)[None]
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = 16000
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def test_bad_videos_are_skipped_and_listed_and_none_usable_is_one_sentence(tmp_path: Path) -> None:
    videos = tmp_path / "videos"
    shutil.copytree(VIDEOS / "bounce", videos)
    (videos / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    _audio_only(videos / "sound.mkv")
    frames = make_videos.render(make_videos.video_specs()[0], SAMPLE_DATA / "digits")
    make_videos.write_video(frames[:6], videos / "short.mp4")  # 0.6 s: fewer than 2 + 5 frames
    result = runner.invoke(
        app, ["train-latent", str(videos), *_options(tmp_path, "run", "--epochs", "1")]
    )
    assert result.exit_code == 0, result.output
    assert "skipped 3 video(s)" in result.stderr
    skipped = json.loads((tmp_path / "run" / "result.json").read_text())["skipped"]
    assert len(skipped) == 3
    assert any("corrupt.mp4 is not a video sslcli can read" in s for s in skipped), skipped
    assert any("sound.mkv has no video stream" in s for s in skipped), skipped
    assert any("short.mp4 lasts 0.6 s (6 frames at 10 fps), shorter than" in s for s in skipped)
    bad = tmp_path / "bad"
    bad.mkdir()
    shutil.copy(videos / "short.mp4", bad)
    none = runner.invoke(
        app, ["train-latent", str(bad), *_options(tmp_path, "none", "--epochs", "1")]
    )
    assert none.exit_code == 2 and "0 past-future pair(s) in the 0 usable video(s)" in none.stderr
    assert not (tmp_path / "none" / "checkpoints").exists()


def test_video_options_are_checked_before_a_run_starts(tmp_path: Path) -> None:
    digits = SAMPLE_DATA / "digits"
    for data, extra, message in (
        (VIDEOS, ("--horizon", "0.25s"), "--horizon 0.25s is 2.5 frames at --fps 10"),
        (VIDEOS, ("--objective", "masked", "--backbone", "vit-tiny"), "--pairs future trains"),
        (VIDEOS, ("--crop-scale", "0.5,1"), "the augmentation options do not apply"),
        (VIDEOS, ("--context-frames", "0"), "--context-frames must be above 0"),
        (VIDEOS, ("--horizon", "soon"), "--horizon 'soon' is not a duration"),
    ):
        result = runner.invoke(app, ["train-latent", str(data), *_options(tmp_path, "x", *extra)])
        assert result.exit_code == 2 and message in result.stderr, (extra, result.output)
    views = runner.invoke(app, ["train-latent", str(digits), "--fps", "5", "--gpus", "0"])
    assert views.exit_code == 2 and "--fps samples the frames of videos" in views.stderr
    horizon = runner.invoke(app, ["train-latent", str(VIDEOS), "--horizon", "1s", "--gpus", "0"])
    assert horizon.exit_code == 2 and "--horizon apply to video pairs" in horizon.stderr
    for command in ("train-siamese", "train-latent"):
        rate = runner.invoke(app, [command, str(VIDEOS), "--fps", "0", "--gpus", "0"])
        assert rate.exit_code == 2 and "--fps must be above 0, got 0" in rate.stderr
    assert not (tmp_path / "x").exists()


def test_embed_writes_one_row_per_sampled_frame_of_each_video(
    video_run: Path, tmp_path: Path
) -> None:
    out = tmp_path / "frames.npy"
    command = ["embed", str(VIDEOS / "fork"), "--model", str(video_run), "-o", str(out), "--json"]
    result = runner.invoke(app, command)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)  # the rows are frames: of how many videos, at what rate
    assert (report["images"], report["videos"], report["fps"]) == (160, 4, 10.0)
    names = json.loads(out.with_suffix(".names.json").read_text())
    assert len(names) == len(np.load(out)) == 4 * 40  # the run's 10 fps, 4 s each
    assert names[0] == "0_000_left.mp4@0.00s" and names[41] == "0_000_right.mp4@0.10s"
    # the rows are the backbone's features of the frames (the forks' first halves are alike)
    frames = np.load(out)
    np.testing.assert_allclose(frames[5], frames[45], atol=1e-3)
    halved = runner.invoke(app, [*command, "--fps", "5", "--overwrite"])
    assert halved.exit_code == 0 and len(np.load(out)) == 4 * 20, halved.output
    mixed = [str(VIDEOS / "fork"), str(SAMPLE_DATA / "photos" / "coins.jpg")]
    mixed_out = tmp_path / "mixed.npy"
    both = runner.invoke(app, ["embed", *mixed, "--model", str(video_run), "-o", str(mixed_out)])
    assert both.exit_code == 2 and "give images or videos, not both" in both.stderr
    assert not mixed_out.exists()
