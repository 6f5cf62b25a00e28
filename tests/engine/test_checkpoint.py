import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from sslcli.engine.atomic import atomic_folder
from sslcli.engine.checkpoint import (
    check_compatible,
    load_checkpoint,
    resolve_resume,
    save_checkpoint,
    save_run_checkpoint,
)
from sslcli.errors import SSLError

REPO = Path(__file__).resolve().parents[2]


def _weights(seed: int) -> dict[str, torch.Tensor]:
    return torch.nn.Linear(4, 3).requires_grad_(False).state_dict() | {
        "marker": torch.full((2,), float(seed))
    }


def test_round_trip_keeps_weights_config_and_trainer_state(tmp_path: Path) -> None:
    model = torch.nn.Linear(4, 3)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(2, 4)).sum().backward()
    optimizer.step()
    state = {"step": 7, "optimizer": optimizer.state_dict()}
    folder = save_checkpoint(tmp_path / "ckpt", model.state_dict(), {"backbone": "x"}, state)

    assert sorted(p.name for p in folder.iterdir()) == [
        "config.json",
        "model.safetensors",
        "trainer_state.pt",
    ]
    loaded = load_checkpoint(folder)
    assert loaded.config == {"backbone": "x"}
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(loaded.weights[name], tensor)
    assert loaded.trainer_state["step"] == 7
    restored = torch.optim.AdamW(torch.nn.Linear(4, 3).parameters(), lr=1e-3)
    restored.load_state_dict(loaded.trainer_state["optimizer"])


def test_trainer_state_with_arbitrary_objects_is_refused(tmp_path: Path) -> None:
    folder = save_checkpoint(tmp_path / "ckpt", _weights(0), {}, {"when": Path("/tmp")})
    with pytest.raises(SSLError, match="holds non-tensor objects; refusing") as raised:
        load_checkpoint(folder)
    assert raised.value.exit_code == 2


def test_a_failure_while_writing_leaves_the_previous_folder_untouched(tmp_path: Path) -> None:
    target = save_checkpoint(tmp_path / "ckpt", _weights(1), {"version": 1})
    with pytest.raises(RuntimeError, match="disk full"), atomic_folder(target) as temporary:
        (temporary / "config.json").write_text("{}")
        raise RuntimeError("disk full")
    assert load_checkpoint(target).config == {"version": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]


def test_run_checkpoints_point_latest_at_the_newest_and_keep_two(tmp_path: Path) -> None:
    for step in (10, 20, 30):
        save_run_checkpoint(tmp_path, step, _weights(step), {"step": step}, {"step": step})
    folders = sorted(p.name for p in (tmp_path / "checkpoints").glob("step-*"))
    assert folders == ["step-00000020", "step-00000030"]
    assert resolve_resume(tmp_path) == tmp_path / "checkpoints" / "step-00000030"
    assert resolve_resume(tmp_path / "checkpoints" / "step-00000020").name == "step-00000020"


def test_resuming_from_an_earlier_step_drops_the_abandoned_later_checkpoints(
    tmp_path: Path,
) -> None:
    for step in (300, 400):
        save_run_checkpoint(tmp_path, step, _weights(step), {"step": step}, {"step": step})
    (tmp_path / "checkpoints" / ".step-00000500.tmp-dead").mkdir()  # left by a kill
    save_run_checkpoint(tmp_path, 150, _weights(150), {"step": 150}, {"step": 150})
    folders = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert folders == ["latest", "step-00000150"]
    assert load_checkpoint(resolve_resume(tmp_path)).config == {"step": 150}


@pytest.mark.parametrize(
    ("setup", "says"),
    [("missing", "does not exist"), ("empty", "no checkpoint in"), ("partial", "not a checkpoint")],
)
def test_resume_errors(tmp_path: Path, setup: str, says: str) -> None:
    path = tmp_path / "run"
    if setup != "missing":
        path.mkdir()
    if setup == "partial":
        (path / "trainer_state.pt").write_bytes(b"")
    with pytest.raises(SSLError, match=says):
        load_checkpoint(resolve_resume(path))


def test_mismatched_checkpoint_is_named_field_by_field() -> None:
    check_compatible(
        {"backbone": "resnet18", "lr": 1}, {"backbone": "resnet18", "lr": 2}, ["backbone"]
    )
    with pytest.raises(
        SSLError, match="backbone: checkpoint has 'resnet18', this run has 'resnet50'"
    ):
        check_compatible({"backbone": "resnet18"}, {"backbone": "resnet50"}, ["backbone"])


WRITER = """
import sys, torch
from pathlib import Path
from sslcli.engine.checkpoint import save_run_checkpoint
run = Path(sys.argv[1])
step = 0
while True:
    step += 1
    weights = {"w": torch.full((256, 1024), float(step))}
    save_run_checkpoint(run, step, weights, {"step": step}, {"step": step})
    print(step, flush=True)
"""


def test_sigkill_at_any_moment_leaves_a_valid_latest_checkpoint(tmp_path: Path) -> None:
    for delay in (0.05, 0.2, 0.45):
        run = tmp_path / f"run-{delay}"
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(run)], stdout=subprocess.PIPE, cwd=REPO
        )
        assert writer.stdout is not None
        writer.stdout.readline()  # the first checkpoint is complete
        time.sleep(delay)
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
        checkpoint = load_checkpoint(resolve_resume(run))
        step = checkpoint.config["step"]
        assert checkpoint.trainer_state == {"step": step}
        assert torch.equal(checkpoint.weights["w"], torch.full((256, 1024), float(step)))
        assert json.loads((checkpoint.path / "config.json").read_text()) == {"step": step}
