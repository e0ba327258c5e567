"""Dataset statistics (mlip.data.statistics) net of a model's fixed prior."""

import numpy as np
import pytest

from mlip.data import AtomicData, compute_statistics
from mlip.models import build


def compressed_frames(model, n=6, seed=0):
    """Squeezed water molecules (inside the ZBL prior's range) whose energies and forces are the
    prior's plus per-element constants: net of the prior, there is nothing left but the constants."""
    rng = np.random.default_rng(seed)
    refs = {1: -13.6, 8: -2041.8}
    frames = []
    for _ in range(n):
        pos = np.array([[0.0, 0.0, 0.0], [0.5, 0.2, 0.0], [-0.2, 0.5, 0.1]]) * rng.uniform(0.8, 1.2)
        d = AtomicData.build(pos=pos, atomic_numbers=[8, 1, 1])
        e, f = model.prior(d)
        assert e > 1.0
        frames.append(AtomicData.build(pos=pos, atomic_numbers=[8, 1, 1], energy=e + refs[8] + 2 * refs[1],
                                       forces=f))
    return frames, refs


def test_statistics_net_of_the_prior():
    model = build("facet", preset="small")
    frames, refs = compressed_frames(model)
    net = compute_statistics(frames, cutoff=model.cutoff, prior=model.prior)
    assert net["force_rms"] == pytest.approx(0.0, abs=1e-9)
    # one composition: the minimum-norm split of the per-formula constant
    total = refs[8] + 2 * refs[1]
    assert net["reference_energies"][8] + 2 * net["reference_energies"][1] == pytest.approx(total, abs=1e-6)
    assert net["energy_residual_rms"] == pytest.approx(0.0, abs=1e-6)
    gross = compute_statistics(frames, cutoff=model.cutoff)
    assert gross["force_rms"] > 1.0 and gross["energy_residual_rms"] > 0.1


def test_a_model_without_prior_has_a_zero_one():
    model = build("facet", preset="small", repulsion=None)
    frames, _ = compressed_frames(build("facet", preset="small"), n=1)
    e, f = model.prior(frames[0])
    assert e == 0.0 and not np.any(f)


def test_shortest_distance_of_every_element_pair_periodic_images_included():
    from ase.build import bulk, molecule

    water = molecule("H2O")
    si = bulk("Si", "diamond", a=5.43)  # 2 atoms: the nearest neighbours are periodic images
    stats = compute_statistics([AtomicData.from_ase(water), AtomicData.from_ase(si)], cutoff=5.0)
    found = {(a, b): d for a, b, d in stats["pair_min_distance"]}
    assert set(found) == {(1, 1), (1, 8), (14, 14)}
    assert found[(1, 8)] == pytest.approx(float(np.linalg.norm(water.positions[1] - water.positions[0])))
    assert found[(1, 1)] == pytest.approx(float(np.linalg.norm(water.positions[1] - water.positions[2])))
    assert found[(14, 14)] == pytest.approx(5.43 * np.sqrt(3) / 4)
