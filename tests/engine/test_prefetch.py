import threading

import torch

from sslcli.engine.prefetch import Prefetcher


def test_background_prefetch_returns_each_steps_batch_and_builds_the_next_one_early() -> None:
    built: list[tuple[int, str]] = []

    def batches(step: int) -> list[torch.Tensor]:
        built.append((step, threading.current_thread().name))
        return [torch.full((2,), float(step))]

    prefetcher = Prefetcher(batches, torch.device("cpu"), background=True)
    try:
        for step in range(4):
            following = step + 1 if step < 3 else None
            assert prefetcher.get(step, following)[0].tolist() == [step, step]
    finally:
        prefetcher.close()
    assert [step for step, _ in built] == [0, 1, 2, 3]
    assert all(name.startswith("sslcli-prefetch") for _, name in built)


def test_on_the_cpu_batches_are_built_inline_by_default() -> None:
    threads: list[str] = []
    prefetcher = Prefetcher(
        lambda step: threads.append(threading.current_thread().name) or [], torch.device("cpu")
    )
    prefetcher.get(0, 1)
    prefetcher.close()
    assert threads == [threading.current_thread().name]
