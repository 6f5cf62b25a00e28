"""Streaming shards on real digits: what pack writes, the order streams read, bad shards."""

import json
import tarfile
from pathlib import Path

import pytest
import torch

from sslcli.data.folder import scan_image_folder
from sslcli.data.shards import MANIFEST_FILE, ShardStreams, pack, read_manifest
from sslcli.data.store import open_store
from sslcli.errors import SSLError
from sslcli.training.config import TrainingConfig, TrainingRequest, resolve_config
from tests.conftest import SAMPLE_DATA as SAMPLE
from tests.conftest import copy_digits


@pytest.fixture(scope="module")
def packed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """32 real digits (8 of each of 4 classes) in 16 shards of 2."""
    work = tmp_path_factory.mktemp("packed")
    digits = copy_digits(work / "digits")
    pack(digits, work / "shards", 20, work / "cache", samples_per_shard=2)
    return work


def _copy(packed: Path, tmp_path: Path) -> Path:
    """A copy of the packed shards to damage."""
    target = tmp_path / "shards"
    target.mkdir()
    for path in (packed / "shards").iterdir():
        (target / path.name).write_bytes(path.read_bytes())
    return target


def test_pack_writes_shards_of_stored_bytes_and_a_manifest(packed: Path) -> None:
    shards = packed / "shards"
    manifest = json.loads((shards / MANIFEST_FILE).read_text())
    assert manifest["format"] == 1 and manifest["count"] == 32 and manifest["resolution"] == 20
    assert manifest["classes"] == ["0", "1", "4", "7"]
    names = [entry["name"] for entry in manifest["shards"]]
    assert names == [f"shard-{n:06d}.tar" for n in range(16)]
    assert sorted(p.name for p in shards.iterdir()) == sorted([*names, MANIFEST_FILE])
    assert all(entry["count"] == 2 for entry in manifest["shards"])
    assert [e["bytes"] for e in manifest["shards"]] == [(shards / n).stat().st_size for n in names]
    # each sample: the store's bytes and its description, keyed by its packed index
    folder = scan_image_folder(packed / "digits")
    stored = open_store(folder.paths, 20, packed / "cache")
    with tarfile.open(shards / names[1]) as tar:
        members = tar.getnames()
        assert members == ["000000002.json", "000000002.raw", "000000003.json", "000000003.raw"]
        meta = json.loads(tar.extractfile("000000003.json").read())
        assert tar.extractfile("000000003.raw").read() == stored.encoded(3)[1]
    assert meta == {
        "name": folder.paths[3].relative_to(packed / "digits").as_posix(),
        "height": 20, "width": 20, "channels": 1, "raw": True, "label": folder.labels[3],
    }  # fmt: skip


def test_packing_an_unchanged_folder_again_rewrites_nothing(packed: Path) -> None:
    shards = packed / "shards"
    times = {p.name: p.stat().st_mtime_ns for p in shards.glob("*.tar")}
    again = pack(packed / "digits", shards, 20, packed / "cache", samples_per_shard=2)
    assert again.written == 0
    assert {p.name: p.stat().st_mtime_ns for p in shards.glob("*.tar")} == times


def test_packing_again_repairs_a_damaged_shard_and_only_it(packed: Path, tmp_path: Path) -> None:
    shards = _copy(packed, tmp_path)
    victim = shards / "shard-000004.tar"
    original = victim.read_bytes()
    victim.write_bytes(original[:600] + bytes(len(original) - 600))  # same size, zeroed tail
    again = pack(packed / "digits", shards, 20, packed / "cache", samples_per_shard=2)
    assert again.written == 1 and victim.read_bytes() == original


def test_packing_fewer_images_removes_the_shards_no_longer_listed(
    packed: Path, tmp_path: Path
) -> None:
    shards = _copy(packed, tmp_path)
    fewer = copy_digits(tmp_path / "fewer", per_class=3)  # 12 digits: 6 shards of 2
    again = pack(fewer, shards, 20, packed / "cache", samples_per_shard=2)
    assert again.manifest.count == 12
    assert sorted(p.name for p in shards.glob("*.tar")) == [s.name for s in again.manifest.shards]


def test_every_sample_once_per_epoch_in_another_order_next_epoch(packed: Path) -> None:
    streams = ShardStreams(read_manifest(packed / "shards" / MANIFEST_FILE), 8, seed=0)
    assert streams.shortest() == 4
    epochs = [[s.index for c in range(8) for s in streams.samples(e, c, 0, 4)] for e in (0, 1)]
    assert sorted(epochs[0]) == sorted(epochs[1]) == list(range(32))
    assert epochs[0] != epochs[1]
    # any slice of a stream is that part of the whole stream: resume reads from the middle
    whole = [s.index for s in streams.samples(1, 3, 0, 4)]
    fresh = ShardStreams(streams.manifest, 8, seed=0)
    assert [s.index for s in fresh.samples(1, 3, 1, 3)] == whole[1:3]
    other_seed = ShardStreams(streams.manifest, 8, seed=1)
    assert [s.index for c in range(8) for s in other_seed.samples(0, c, 0, 4)] != epochs[0]


def test_a_window_of_two_shards_is_shuffled_together(packed: Path) -> None:
    streams = ShardStreams(read_manifest(packed / "shards" / MANIFEST_FILE), 4, seed=0)
    shards = streams.stream_shards(0, 0)
    assert len(shards) == 4  # 16 shards dealt to 4 streams: 2 windows of 2 shards
    first_window = {i for shard in shards[:2] for i in range(shard.first, shard.first + 2)}
    assert {s.index for s in streams.samples(0, 0, 0, 4)} == first_window


def _config(shards: Path, world_size: int, **settings: object) -> TrainingConfig:
    """A tiny-CNN SimCLR run's resolved settings on ``shards`` (4 streams unless given)."""
    request = TrainingRequest(
        data=str(shards), method="simclr", backbone="tiny-cnn", small_images=None,
        view_changes={}, epochs=1, optimizer=None, lr_per_256=None, weight_decay=None,
        warmup_epochs=None, method_options={}, precision="fp32", knn_every=1, eval_dir=None,
        online_probe=False, checkpoint_every=0, stop_on_collapse=False, strict=False,
        cache_dir=str(shards.parent / "cache"), **{"seed": 0, "streams": 4, **settings},
    )  # fmt: skip
    return resolve_config(request, world_size)


def _shard_batches_indices(packed: Path, world_size: int, rank: int, step: int) -> list[int]:
    from sslcli.augment.presets import PRESETS
    from sslcli.engine.runtime import Runtime
    from sslcli.training.views import ShardBatches

    config = _config(
        packed / "shards", world_size, size=16, preset="minimal", batch_size=16, streams=8
    )
    streams = ShardStreams(read_manifest(packed / "shards" / MANIFEST_FILE), 8, seed=0)
    runtime = Runtime(torch.device("cpu"), "fp32", 0, rank=rank, world_size=world_size)
    batches = ShardBatches(streams, config, PRESETS.create("minimal"), runtime, 2)
    return [sample.index for sample in batches.local_samples(step)]


def test_the_global_batch_is_the_same_for_one_and_two_processes(packed: Path) -> None:
    for step in range(4):  # two epochs of two steps
        one = _shard_batches_indices(packed, 1, 0, step)
        two = _shard_batches_indices(packed, 2, 0, step) + _shard_batches_indices(
            packed, 2, 1, step
        )
        assert len(one) == 16 and one == two


def test_a_truncated_shard_is_named_with_what_to_do(packed: Path, tmp_path: Path) -> None:
    shards = _copy(packed, tmp_path)
    victim = shards / "shard-000005.tar"
    victim.write_bytes(victim.read_bytes()[:700])
    streams = ShardStreams(read_manifest(shards / MANIFEST_FILE), 8, seed=0)
    with pytest.raises(SSLError) as caught:
        for stream in range(8):
            streams.samples(0, stream, 0, 4)
    assert "shard shard-000005.tar is truncated or corrupt" in caught.value.message
    assert "pack the data again" in caught.value.hint and "fetch" in caught.value.hint


def test_a_missing_shard_and_a_shard_changed_after_packing(packed: Path, tmp_path: Path) -> None:
    shards = _copy(packed, tmp_path)
    (shards / "shard-000002.tar").unlink()
    (shards / "shard-000003.tar").write_bytes((shards / "shard-000004.tar").read_bytes())
    streams = ShardStreams(read_manifest(shards / MANIFEST_FILE), 1, seed=0)
    messages = []
    for shard in streams.manifest.shards[2:4]:
        with pytest.raises(SSLError) as caught:
            streams._read(shard)
        messages.append(caught.value.message)
    assert "shard shard-000002.tar is missing" in messages[0]
    assert "shard-000003.tar holds" in messages[1] and "changed after packing" in messages[1]


def test_a_manifest_of_another_format_is_refused(packed: Path, tmp_path: Path) -> None:
    shards = _copy(packed, tmp_path)
    manifest = json.loads((shards / MANIFEST_FILE).read_text())
    (shards / MANIFEST_FILE).write_text(json.dumps(manifest | {"format": 99}))
    with pytest.raises(SSLError, match="format 99; this version of sslcli reads format 1"):
        read_manifest(shards / MANIFEST_FILE)


def test_pipe_urls_read_through_webdataset(packed: Path) -> None:
    manifest = read_manifest(packed / "shards" / MANIFEST_FILE)
    url = f"pipe:cat {packed / 'shards'}/{{name}}"
    piped = ShardStreams(manifest, 8, seed=0, url=url)
    local = ShardStreams(manifest, 8, seed=0)
    assert [s.data for s in piped.samples(0, 2, 0, 4)] == [
        s.data for s in local.samples(0, 2, 0, 4)
    ]


def test_shard_views_are_the_stores_views_of_the_same_jpegs(tmp_path: Path) -> None:
    """Photos (stored as JPEG) streamed from shards decode and cut as the store's do: a sample
    keeps its stored image's index, so its views are drawn alike."""
    import shutil

    from sslcli.augment.presets import PRESETS
    from sslcli.engine.runtime import Runtime
    from sslcli.training.views import ShardBatches, drawn_views

    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ["chelsea.jpg", "rocket.jpg", "coins.jpg", "astronaut.jpg"]:
        shutil.copyfile(SAMPLE / "photos" / name, photos / name)
    result = pack(photos, tmp_path / "shards", 80, tmp_path / "cache", samples_per_shard=1)
    config = _config(tmp_path / "shards", 1, size=32, preset="simclr", batch_size=4, seed=3)
    preset = PRESETS.create("simclr")
    streams = ShardStreams(result.manifest, 4, seed=3)
    batches = ShardBatches(streams, config, preset, Runtime(torch.device("cpu"), "fp32", 3), 1)
    samples = batches.local_samples(0)
    assert all(not sample.record.raw for sample in samples)
    indices = [sample.index for sample in samples]
    stored = open_store(sorted(photos.iterdir()), 80, tmp_path / "cache")
    expected = drawn_views(
        stored.tensors(indices, torch.device("cpu")),
        torch.tensor(indices),
        torch.from_numpy(stored.heights[indices]),
        torch.from_numpy(stored.widths[indices]),
        batches.recipes,
        config.seed,
    )
    for got, want in zip(batches.views(0), expected, strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_a_failing_shard_command_is_named(packed: Path, tmp_path: Path) -> None:
    manifest = read_manifest(packed / "shards" / MANIFEST_FILE)
    streams = ShardStreams(manifest, 8, seed=0, url=f"pipe:cat {tmp_path}/gone/{{name}}")
    with pytest.raises(SSLError, match=r"the command 'cat .*/gone/shard-0000\d\d.tar' failed"):
        streams.samples(0, 0, 0, 4)
