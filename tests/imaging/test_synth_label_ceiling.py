"""The v9 label ceilings read from the generator as it runs (bench/synth_label_ceiling.py)."""

from __future__ import annotations

from bench.synth_label_ceiling import measure


def test_an_observer_that_knows_the_healthy_flair_finds_the_label_and_the_spread_costs_little():
    result = measure(seed=909, n=1)  # the held-out set's first case: an enhancing tumour, t = 0.117
    (row,) = result["cases"].values()
    assert row["t"] == 0.117 and row["whole_tumour_ml"] > 10
    # Reading the wrong images (for one, ones scaled to int16) gives an observer near 0, not near 1.
    assert 0.9 < row["observer_own_t"] < 1 and 0.9 < row["observer"] < 1
    assert 0.9 < row["spread"] < 1
    assert result["mean"]["observer"] == round(row["observer"], 3)
