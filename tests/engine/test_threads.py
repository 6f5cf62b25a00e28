"""--threads: how many CPU threads torch computes with."""

import pytest
import torch

from sslcli.engine.runtime import set_threads
from sslcli.errors import SSLError


def test_threads_are_set_and_none_leaves_torchs_default() -> None:
    before = torch.get_num_threads()
    try:
        assert set_threads(None) == before == torch.get_num_threads()
        assert set_threads(1) == 1 == torch.get_num_threads()
        assert set_threads(3) == 3 == torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("threads", [0, -2])
def test_fewer_than_one_thread_is_a_usage_error(threads: int) -> None:
    with pytest.raises(SSLError, match="--threads must be 1 or more") as raised:
        set_threads(threads)
    assert raised.value.exit_code == 2
