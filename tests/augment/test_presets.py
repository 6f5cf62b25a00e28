"""Named presets are the recipes they say they are."""

from sslcli.augment.presets import PRESETS, customise
from sslcli.cli.view_options import view_changes


def test_digits_is_simclr_with_the_digit_benchmarks_overrides() -> None:
    # benchmarks/RESULTS.md's digit runs: --crop-scale 0.6,1 --flip-prob 0
    # --jitter 0.4,0.4,0,0 --grayscale-prob 0 --rotation 15 on the simclr preset
    changes = view_changes("0.6,1", None, "0.4,0.4,0,0", None, 0.0, 0.0, None, None, 15.0)
    overridden = customise(PRESETS.create("simclr"), changes, {})
    assert PRESETS.create("digits") == overridden
    assert PRESETS.create("digits").recipe(0).rotation == 15.0
