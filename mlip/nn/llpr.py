"""One model's own uncertainty from its last layer (LLPR: Bigi, Chong, Ceriotti and Grasselli, "A
prediction rigidity formalism for low-cost uncertainties in trained neural networks", 2024; its
local, per-atom form: Chong et al., "Robustness of local predictions in atomistic machine learning
models", 2023).

The per-atom energy is a linear function of the last layer's input f_i (H features and a 1 for the
bias). Over the training set the rigidity of that last layer is A = sum_i f_i f_i^T (atoms) and
S = sum_s F_s F_s^T with F_s = sum_{i in s} f_i (structures). A prediction's uncertainty is

    forces_std_i = alpha_F * sqrt(f_i^T (A + lambda I)^-1 f_i)      eV/Å, per atom
    energy_std_s = alpha_E * sqrt(F_s^T (S + lambda_S I)^-1 F_s)    eV, per structure

large where the features lie outside what training covered. alpha_F and alpha_E are fitted on the
validation split (mlip.uncertainty.calibration); the regularisers lambda are a fraction of the mean
eigenvalue. Cost at inference: one (N, H) x (H, H) product on features the forward pass computes
anyway (a forward pre-hook on the model's ``last_layer``).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, List

import torch
from torch import nn

from mlip.nn.scatter import scatter_sum


@contextmanager
def captured_features(model) -> Iterator[List[torch.Tensor]]:
    """Within the block, the input of ``model.last_layer`` at each call lands in the yielded list."""
    store: List[torch.Tensor] = []
    handle = model.last_layer.register_forward_pre_hook(lambda module, args: store.append(args[0]))
    try:
        yield store
    finally:
        handle.remove()


def with_bias(features: torch.Tensor) -> torch.Tensor:
    return torch.cat([features, torch.ones_like(features[:, :1])], dim=1)


class LastLayerUncertainty(nn.Module):
    """The fitted LLPR state of one model: inverse rigidities and calibration factors (buffers, in
    the model file). ``forward(features (N,H), batch (N,), num_graphs)`` -> (energy_std (B,),
    forces_std (N,))."""

    def __init__(self, width: int):
        super().__init__()
        size = width + 1
        self.register_buffer("atom_inverse", torch.zeros(size, size, dtype=torch.float64))
        self.register_buffer("structure_inverse", torch.zeros(size, size, dtype=torch.float64))
        self.register_buffer("alpha_forces", torch.tensor(1.0, dtype=torch.float64))
        self.register_buffer("alpha_energy", torch.tensor(1.0, dtype=torch.float64))

    def forward(self, features: torch.Tensor, batch: torch.Tensor, num_graphs: int):
        f = with_bias(features.detach().double())
        atom = (f @ self.atom_inverse * f).sum(-1).clamp(min=0).sqrt() * self.alpha_forces
        total = scatter_sum(f, batch, num_graphs)
        structure = (total @ self.structure_inverse * total).sum(-1).clamp(min=0).sqrt() * self.alpha_energy
        return structure, atom

    @staticmethod
    def inverse(rigidity: torch.Tensor, regulariser: float) -> torch.Tensor:
        scale = float(torch.diagonal(rigidity).mean())
        return torch.linalg.inv(rigidity + regulariser * max(scale, 1e-30) * torch.eye(rigidity.shape[0],
                                                                                          dtype=rigidity.dtype))


def fit_last_layer(model, loader, regulariser: float = 1e-6) -> LastLayerUncertainty:
    """The rigidities of ``model``'s last layer over the batches of ``loader`` (the training split),
    inverted; calibration factors 1 (see :func:`calibrate_last_layer`)."""
    width = model.last_layer.in_features
    atoms = torch.zeros(width + 1, width + 1, dtype=torch.float64)
    structures = torch.zeros_like(atoms)
    was_training = model.training
    model.eval()
    for batch in loader:
        with captured_features(model) as store:
            model(batch, compute_forces=False, compute_stress=False)
        f = with_bias(store[-1][: batch.pos.shape[0]].detach().double())
        atoms += f.T @ f
        total = scatter_sum(f, batch.batch, int(batch.num_graphs))
        structures += total.T @ total
    model.train(was_training)
    state = LastLayerUncertainty(width)
    state.atom_inverse.copy_(LastLayerUncertainty.inverse(atoms, regulariser))
    state.structure_inverse.copy_(LastLayerUncertainty.inverse(structures, regulariser))
    return state
