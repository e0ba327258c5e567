"""torch.export programs (and AOTInductor packages) of a potential, forces and stress included.

torch.export cannot trace ``torch.autograd.grad`` itself. So the energy-and-gradient function is
first traced into aten operations with ``make_fx`` (symbolic shapes, weights as inputs), which
writes the backward pass out as ordinary operations; that graph is then exported with dynamic
numbers of atoms, edges and structures.

Program inputs: pos (N,3), atomic_numbers (N,), cell (B,3,3), pbc (B,3) bool, edge_index (2,E),
cell_shifts (E,3), batch (N,), charge (B,), spin (B,). Outputs: energy (B,) eV, forces (N,3) eV/Å, stress (B,3,3) eV/Å^3.
"""

from __future__ import annotations

from typing import Tuple

import torch
from torch import nn

INPUTS = ("pos", "atomic_numbers", "cell", "pbc", "edge_index", "cell_shifts", "batch", "charge", "spin")


class _TracedPotential(nn.Module):
    """A traced graph plus the weights it takes as inputs, as one module torch.export can take."""

    def __init__(self, graph, state: dict):
        super().__init__()
        self.graph = graph
        self.names = list(state)
        for i, value in enumerate(state.values()):
            self.register_buffer(f"w{i}", value.detach().clone())

    def forward(self, pos, atomic_numbers, cell, pbc, edge_index, cell_shifts, batch, charge, spin):
        state = {name: getattr(self, f"w{i}") for i, name in enumerate(self.names)}
        return self.graph(state, pos, atomic_numbers, cell, pbc, edge_index, cell_shifts, batch, charge, spin)


def example_inputs(model) -> Tuple[torch.Tensor, ...]:
    """Tracing inputs: a batch of two small periodic structures (sizes above 1 everywhere, so that
    no dimension is specialised) of the model's first known element."""
    from ase.build import bulk

    from mlip.data import AtomicData
    from mlip.graph import collate

    z = int(model.known_species.nonzero()[0])
    structures = [bulk("Cu", "fcc", a=3.6, cubic=True), bulk("Cu", "fcc", a=3.6).repeat((3, 1, 1))]
    for i, atoms in enumerate(structures):
        atoms.set_atomic_numbers([z] * len(atoms))
        atoms.rattle(0.05, seed=i)
    batch = collate([AtomicData.from_ase(a) for a in structures], cutoff=model.cutoff,
                    max_neighbors=model.max_neighbors)
    return batch_inputs(batch, model.reference_energies.dtype)


def batch_inputs(batch, dtype) -> Tuple[torch.Tensor, ...]:
    """The program's inputs (see module docstring) from a batch with its graph."""
    from mlip.models.base import structure_fields

    graph, _, charge, spin = structure_fields(batch)
    return (batch.pos.to(dtype), batch.atomic_numbers, batch.cell.reshape(-1, 3, 3).to(dtype),
            batch.pbc.reshape(-1, 3), batch.edge_index, batch.cell_shifts, graph, charge, spin)


def export_program(model, example=None) -> torch.export.ExportedProgram:
    """A torch.export program of ``model`` (eval mode, its dtype) with dynamic atoms, edges, structures."""
    from torch.fx.experimental.proxy_tensor import make_fx

    from mlip.kernels import backend

    model = model.eval()
    state = {**dict(model.named_parameters()), **dict(model.named_buffers())}

    def energy_forces_stress(weights, pos, atomic_numbers, cell, pbc, edge_index, cell_shifts, batch, charge, spin):
        with torch.nn.utils.stateless._reparametrize_module(model, weights):
            out = model.compute(pos, atomic_numbers, cell, pbc, edge_index, cell_shifts, batch, cell.shape[0],
                                charge, spin, True, True)
        return out["energy"], out["forces"], out["stress"]

    example = example if example is not None else example_inputs(model)
    weights = {k: v.detach() for k, v in state.items()}
    from torch.fx.experimental.symbolic_shapes import GuardOnDataDependentSymNode

    from torch.fx.experimental import _config as shape_config

    try:
        # no duck sizing: a weight dimension that happens to equal the example's atom or structure
        # count (EquiformerV2's 2 heads, eSCN's 7 kept coefficients) must not tie that count to a constant
        # the kernels' torch references (plain aten operations; the CPU's sparse products are not traceable)
        with shape_config.patch(use_duck_shape=False), backend("torch"):
            graph = make_fx(energy_forces_stress, tracing_mode="symbolic")(weights, *example)
    except GuardOnDataDependentSymNode as error:
        raise RuntimeError(f"{getattr(model, 'name', 'this model')} cannot be exported with torch.export: a tensor "
                           "shape depends on the data (a model with a padded neighbour table, such as escaip, needs "
                           "max_neighbors set); --format torchscript has no such limit") from error
    traced = _TracedPotential(graph, weights)
    atoms, edges, graphs = torch.export.Dim("atoms"), torch.export.Dim("edges"), torch.export.Dim("structures")
    shapes = ({0: atoms}, {0: atoms}, {0: graphs}, {0: graphs}, {1: edges}, {0: edges}, {0: atoms}, {0: graphs},
              {0: graphs})
    return torch.export.export(traced, example, dynamic_shapes=shapes)


def compile_aoti(program: torch.export.ExportedProgram, path: str) -> str:
    """AOTInductor package of ``program`` at ``path`` (.pt2); a clear error where inductor fails."""
    try:
        return torch._inductor.aoti_compile_and_package(program, package_path=str(path))
    except Exception as error:  # inductor's own failures come in many types
        raise RuntimeError(f"AOTInductor could not compile this model with torch {torch.__version__} on "
                           f"{str(program.example_inputs[0][0].device)} ({type(error).__name__}: "
                           f"{str(error).strip().splitlines()[-1][:300] if str(error).strip() else ''}); "
                           "use --format export (a torch.export program) or torchscript") from error
