"""Ctrl-C and SIGTERM as a request to stop: the loop finishes its step, saves and returns."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager


class StopRequest:
    def __init__(self) -> None:
        self.requested = False

    def __call__(self, signum: int, frame: object) -> None:
        self.requested = True


@contextmanager
def catch_stop_signals() -> Iterator[StopRequest]:
    """Within the block, SIGINT and SIGTERM set ``requested`` instead of stopping the process."""
    stop = StopRequest()
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
