import pytest

from sslcli.engine.progress import progress_bar


def test_progress_shows_throughput_eta_and_metrics_on_stderr(capsys: pytest.CaptureFixture) -> None:
    with progress_bar("training", total=4, unit="img") as progress:
        for _ in range(4):
            progress.advance(2, loss=0.123456, phase="warm-up")
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "training" in captured.err and "img/s" in captured.err and "ETA" in captured.err
    assert "loss 0.1235" in captured.err and "phase warm-up" in captured.err


def test_disabled_progress_prints_nothing(capsys: pytest.CaptureFixture) -> None:
    with progress_bar("training", total=4, unit="img", enabled=False) as progress:
        progress.advance(4, loss=1.0)
    assert capsys.readouterr() == ("", "")
