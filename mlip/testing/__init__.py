"""Checks any potential or block can be put through, shipped with the package.

    PotentialTests                         the physics suite: subclass it with a `model` fixture (pytest)
    randomized(model)                      a model made non-trivial for testing (random weights, statistics)
    STRUCTURES, data(name)                 the suite's structures
    equivariance_errors(model, data)       relative errors of E, F, σ under random rotations
    rotation_sensitivity(model, data)      mean change of E (eV/atom) and F (relative) under rotations
    assert_equivariant(model, data, rtol)
    feature_equivariance_error(fn, x, lmax_in, lmax_out)   for blocks on (N, S, C) features

The suite (mlip.testing.suite) imports pytest, so it is loaded on first use of PotentialTests.
"""

from mlip.testing.equivariance import (assert_equivariant, equivariance_errors, feature_equivariance_error,
                                       rotation_sensitivity)
from mlip.testing.structures import REFERENCE_ENERGIES, STRUCTURES, data, randomized

__all__ = ["PotentialTests", "randomized", "STRUCTURES", "REFERENCE_ENERGIES", "data", "equivariance_errors",
           "rotation_sensitivity", "assert_equivariant", "feature_equivariance_error"]


def __getattr__(name):
    if name == "PotentialTests":
        from mlip.testing.suite import PotentialTests

        return PotentialTests
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
