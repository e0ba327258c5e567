"""Calibration and ranking of uncertainties (mlip.uncertainty.calibration)."""

import numpy as np
import pytest

from mlip.uncertainty import calibration_factor, uncertainty_report


def test_calibration_factor_matches_the_rms():
    rng = np.random.default_rng(0)
    std = rng.uniform(0.1, 1.0, 1000)
    error = 3.0 * std * np.abs(rng.normal(size=1000))
    s = calibration_factor(std, error)
    assert np.sqrt(np.mean((s * std) ** 2)) == pytest.approx(np.sqrt(np.mean(error ** 2)), rel=1e-12)
    with pytest.raises(ValueError, match="all zero"):
        calibration_factor(np.zeros(3), np.ones(3))


def test_report_ranks_informative_uncertainties_above_noise():
    rng = np.random.default_rng(1)
    structures = np.repeat(np.arange(50), 9)
    scale = rng.uniform(0.01, 1.0, 50)[structures]
    error = scale * np.abs(rng.normal(size=scale.size))
    good = uncertainty_report(scale, error, structures)
    noise = uncertainty_report(rng.uniform(size=scale.size), error, structures)
    assert good["spearman_structures"] > 0.8 and abs(noise["spearman_structures"]) < 0.4
    assert len(good["calibration_curve"]) == 10
