"""Rotation checks any potential or block can be put through (as e3nn.util.test does for e3nn modules).

    equivariance_errors(model, data)      relative errors of E, F, σ under random rotations
    rotation_sensitivity(model, data)     mean change of E (eV/atom) and F (relative) under rotations
    assert_equivariant(model, data, rtol)
    feature_equivariance_error(fn, x, lmax_in, lmax_out)   for blocks on (N, S, C) features
"""

from __future__ import annotations

import torch

from mlip.graph.rotate import rotate
from mlip.nn.so3 import block_wigner_D, random_rotation


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach(), b.detach()
    scale = max(float(a.abs().max()), float(b.abs().max()), 1e-30)
    return float((a - b).abs().max()) / scale


def equivariance_errors(model, data, rotations: int = 3, seed: int = 0) -> dict:
    """Worst relative error over random rotations: energy invariance, forces and stress equivariance."""
    generator = torch.Generator().manual_seed(seed)
    ref = model(data)
    worst = {"energy": 0.0, "forces": 0.0, "stress": 0.0}
    for _ in range(rotations):
        r = random_rotation(dtype=data.pos.dtype, generator=generator)
        out = model(rotate(data, r))
        worst["energy"] = max(worst["energy"], _relative(out["energy"], ref["energy"]))
        worst["forces"] = max(worst["forces"], _relative(out["forces"], ref["forces"] @ r.T))
        if "stress" in ref and bool(ref["stress"].abs().max() > 0):
            worst["stress"] = max(worst["stress"], _relative(out["stress"], r @ ref["stress"] @ r.T))
    return worst


def rotation_sensitivity(model, data, rotations: int = 2, seed: int = 0) -> dict:
    """How much a model's predictions change under random rotations, averaged over ``rotations``:
    ``forces``: |F(R x) - R F(x)| / |F(x)| (norms over all atoms and components); ``energy_per_atom``:
    mean |E(R x) - E(x)| / N, eV/atom. 0 for an exactly equivariant model (up to rounding); the
    metric mlip reports for potentials that learn the symmetry (``model.exactly_equivariant``)."""
    generator = torch.Generator().manual_seed(seed)
    ref = model(data, compute_stress=False)
    natoms = data.natoms.to(ref["energy"].dtype) if "natoms" in data else torch.tensor(float(data.num_nodes))
    forces, energy = 0.0, 0.0
    for _ in range(rotations):
        r = random_rotation(dtype=data.pos.dtype, generator=generator)
        out = model(rotate(data, r), compute_stress=False)
        rotated = ref["forces"].detach() @ r.T.to(ref["forces"].dtype)
        forces += float((out["forces"].detach() - rotated).norm() / rotated.norm().clamp(min=1e-30))
        energy += float(((out["energy"] - ref["energy"]).detach().abs() / natoms).mean())
    return {"forces": forces / rotations, "energy_per_atom": energy / rotations}


def assert_equivariant(model, data, rtol: float = 1e-8, rotations: int = 3) -> dict:
    errors = equivariance_errors(model, data, rotations)
    bad = {k: v for k, v in errors.items() if v > rtol}
    assert not bad, f"not equivariant to {rtol:g}: {bad}"
    return errors


def feature_equivariance_error(fn, x: torch.Tensor, lmax_in: int, lmax_out: int | None = None,
                               rotation: torch.Tensor | None = None) -> float:
    """Relative error of fn(D x) against D fn(x) for features x (N, S, C)."""
    lmax_out = lmax_in if lmax_out is None else lmax_out
    r = random_rotation(dtype=x.dtype) if rotation is None else rotation
    d_in, d_out = block_wigner_D(lmax_in, r), block_wigner_D(lmax_out, r)
    lhs = fn(torch.einsum("ab,nbc->nac", d_in, x))
    rhs = torch.einsum("ab,nbc->nac", d_out, fn(x))
    return _relative(lhs, rhs)
