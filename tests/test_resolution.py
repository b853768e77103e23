"""The smallest detectable difference, from interval widths."""

from __future__ import annotations

import pytest

from srlm_core.reporting import resolution


def test_detectable_difference_scales_with_the_interval():
    # SE = width / 3.92; 80% power at 5%: 2.80 SE against no difference, 2.80 sqrt(2) SE between models
    assert resolution.detectable([0.392], "against no difference") == pytest.approx(0.28, abs=1e-3)
    assert resolution.detectable([0.392], "between models") == pytest.approx(0.396, abs=1e-3)
    assert resolution.detectable([0.1, 0.392, 0.5], "against no difference") == pytest.approx(0.28, abs=1e-3)
    assert resolution.detectable([], "between models") is None


def test_rows_skip_models_without_an_interval():
    models = [{"acc": 0.6, "acc_ci95_low": 0.4, "acc_ci95_high": 0.8}, {"acc": None}, None]
    (row,) = resolution.rows([("accuracy", "groups", models, "acc", "between models")])
    assert row["median_ci95_width"] == pytest.approx(0.4)
    assert row["detectable_difference"] == pytest.approx(1.01 * 0.4, abs=2e-3)
    (empty,) = resolution.rows([("accuracy", "groups", [], "acc", "between models")])
    assert empty["detectable_difference"] is None


def test_a_point_interval_claims_nothing():
    """[0, 0] (every resample the same) has no width to read a standard error from: left out, not a 0 that would
    say any difference is detectable."""
    models = [{"rate": 0.0, "rate_ci95_low": 0.0, "rate_ci95_high": 0.0}, {"rate": 0.1, "rate_ci95_low": 0.0,
                                                                           "rate_ci95_high": 0.3}]
    (row,) = resolution.rows([("rate", "groups", models, "rate", "between models")])
    assert row["median_ci95_width"] == pytest.approx(0.3)
    (alone,) = resolution.rows([("rate", "groups", models[:1], "rate", "between models")])
    assert alone["median_ci95_width"] is None and alone["detectable_difference"] is None
