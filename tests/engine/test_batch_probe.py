"""The search of ``--batch-size auto`` (the GPU measurement itself runs on a GPU machine:
benchmarks/gpu_checks.sh)."""

import pytest
import torch

from sslcli.engine.batch_probe import LARGEST, largest_fitting, measure_largest_batch


@pytest.mark.parametrize("limit", [8, 9, 100, 1000, 1234, 40000])
def test_the_search_finds_the_largest_fitting_batch_within_a_sixteenth(limit: int) -> None:
    tried: list[int] = []

    def fits(batch: int) -> bool:
        tried.append(batch)
        return batch <= limit

    found, count = largest_fitting(fits, 8)
    assert found % 8 == 0 and found <= limit
    assert found >= limit - max(8, limit // 16)
    assert count == len(tried) == len(set(tried))
    assert count <= 2 * limit.bit_length()  # doubling, then bisection


def test_the_search_stops_at_its_largest_and_says_when_nothing_fits() -> None:
    assert largest_fitting(lambda batch: True, 8) == (LARGEST, 14)  # 8 x 2**13
    assert largest_fitting(lambda batch: True, 8, largest=100) == (64, 4)
    assert largest_fitting(lambda batch: False, 8) == (0, 1)
    found, _ = largest_fitting(lambda batch: batch <= 200, 24)  # whole multiples of 24
    assert found % 24 == 0 and 176 <= found <= 200


def test_the_measurement_needs_a_gpu() -> None:
    with pytest.raises(ValueError, match="no GPU"):
        measure_largest_batch(lambda batch: None, torch.device("cpu"))
