"""Exported potentials: TorchScript files, torch.export programs, AOTInductor packages.

    export(model, path, format="torchscript" | "export" | "aoti")
    load_exported(path) -> ExportedPotential    (what mlip.load returns for such files)

A TorchScript file loads with ``torch.jit.load`` once mlip's operators are registered (import mlip, or
:mod:`mlip.export.native` without it): ``forward(pos, atomic_numbers, cell, pbc, charge, spin)``
gives energy, forces and stress of one structure (neighbour list inside), ``compute(...)`` takes a
caller's neighbour list (see :class:`mlip.export.scripted.ScriptablePotential`). A torch.export
program (``torch.export.load(path).module()``) takes the inputs of :mod:`mlip.export.program`.
Each file carries ``mlip.json`` (architecture, cutoff, species, dtype) beside the model. A forecaster
(mlip.models.forecaster) exports to TorchScript only (:class:`mlip.export.scripted.ScriptableForecaster`:
``compute(pos, atomic_numbers, masses, velocities, cell, pbc, edge_index, cell_shifts, batch, num_graphs)``).
"""

from __future__ import annotations

import json
import os
import zipfile
from typing import Dict

import torch
from torch import nn

from mlip.export.program import INPUTS, batch_inputs, compile_aoti, export_program
from mlip.export.scripted import ScriptableForecaster, ScriptablePotential
from mlip.models.forecaster import Forecaster

FORMATS = ("torchscript", "export", "aoti")
METADATA = "mlip.json"


def metadata(model) -> dict:
    return {"format": "mlip-exported", "name": model.name, "cutoff": model.cutoff,
            "max_neighbors": model.max_neighbors, "dtype": str(model.reference_energies.dtype).replace("torch.", ""),
            "species": model.known_species.nonzero().flatten().tolist(), "hyperparameters": model.hyperparameters,
            "inputs": list(INPUTS)}


def export(model, path, format: str = "torchscript") -> str:
    """Write ``model`` (a Potential, in its dtype and on its device) to ``path`` atomically."""
    if format not in FORMATS:
        raise ValueError(f"export format must be one of {FORMATS}, got {format!r}")
    model = model.eval()
    path = str(path)
    tmp = f"{path}.tmp-{os.getpid()}.pt2"  # torch.export wants the .pt2 suffix
    if isinstance(model, Forecaster):  # the model itself scripts: compute(...) with the graph given
        if format != "torchscript":
            raise ValueError(f"a forecaster exports to TorchScript only, not {format!r}")
        meta = json.dumps({"format": "mlip-exported", "kind": "forecaster", "name": model.name,
                           "cutoff": model.cutoff, "interval": float(model.interval),
                           "dtype": str(model.dtype).replace("torch.", ""), "hyperparameters": model.hyperparameters})
        torch.jit.save(torch.jit.script(ScriptableForecaster(model)), tmp, _extra_files={METADATA: meta})
        os.replace(tmp, path)
        return path
    meta = json.dumps(metadata(model))
    if format == "torchscript":
        scripted = torch.jit.script(ScriptablePotential(model))
        torch.jit.save(scripted, tmp, _extra_files={METADATA: meta})
    elif format == "export":
        torch.export.save(export_program(model), tmp, extra_files={METADATA: meta})
    else:
        compile_aoti(export_program(model), tmp)
        with open(f"{path}.json", "w") as f:  # AOTInductor packages hold no extra files
            f.write(meta)
    os.replace(tmp, path)
    return path


def exported_kind(path) -> str | None:
    """"torchscript", "export" or "aoti" for an exported file, None for anything else."""
    if not zipfile.is_zipfile(path):
        return None
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    if any("/code/__torch__/" in n for n in names):
        return "torchscript"
    if any(n.endswith(".so") for n in names):
        return "aoti"
    if any(n.endswith("/models/model.json") for n in names):
        return "export"
    return None


class ExportedPotential(nn.Module):
    """An exported file behind the Potential interface: ``forward(data, compute_forces, compute_stress)``.

    The graph is built in Python (as for eager models) and handed to the exported code, so the
    calculator, relaxation and MD code never know what they hold. Forces and stress are always
    computed (the exported graph has them built in).
    """

    def __init__(self, path, device: str = "cpu"):
        super().__init__()
        self.path = str(path)
        self.kind = exported_kind(path)
        if self.kind is None:
            raise ValueError(f"{path}: not an exported mlip model")
        if self.kind == "torchscript":
            files = {METADATA: ""}
            self.module = torch.jit.load(self.path, map_location=device, _extra_files=files)
            meta = json.loads(files[METADATA])
        elif self.kind == "export":
            files = {METADATA: ""}
            self.module = torch.export.load(self.path, extra_files=files).module()
            meta = json.loads(files[METADATA])
        else:
            self.module = torch._inductor.aoti_load_package(self.path)
            with open(f"{self.path}.json") as f:
                meta = json.load(f)
        self.meta = meta
        self.name = meta["name"]
        self.cutoff = float(meta["cutoff"])
        self.max_neighbors = meta["max_neighbors"]
        self.hyperparameters = meta["hyperparameters"]
        self._dtype = getattr(torch, meta["dtype"])
        # files exported before pbc was an input take the others only (their code reads periodicity from the cell)
        self.takes_pbc = "pbc" in meta.get("inputs", ())

    @property
    def dtype(self) -> torch.dtype:
        return self._dtype

    def train(self, mode: bool = True):
        """Exported code runs as it was exported (inference); the flag is kept for the interface."""
        self.training = mode
        return self

    def forward(self, data, compute_forces: bool = True, compute_stress: bool = True) -> Dict[str, torch.Tensor]:
        from mlip.graph import collate
        from mlip.graph.build import build_graph

        if "edge_index" not in data or "cell_shifts" not in data:
            data = build_graph(data.clone(), self.cutoff, self.max_neighbors)
        if getattr(data, "batch", None) is None:
            data = collate([data])
        inputs = batch_inputs(data, self._dtype)
        if not self.takes_pbc:
            inputs = tuple(x for name, x in zip(INPUTS, inputs) if name != "pbc")
        if self.kind == "torchscript":
            split = len(inputs) - 2  # num_graphs goes before charge and spin
            out = self.module.compute(*inputs[:split], int(data.num_graphs), *inputs[split:], compute_forces,
                                      compute_stress)
            return dict(out)
        energy, forces, stress = self.module(*inputs)
        return {"energy": energy, "forces": forces, "stress": stress}


def load_exported(path, device: str = "cpu"):
    """An ExportedPotential, or for an exported forecaster its TorchScript module (``compute``,
    ``cutoff``, ``interval``, as the eager Forecaster's)."""
    if exported_kind(path) == "torchscript":
        files = {METADATA: ""}
        module = torch.jit.load(str(path), map_location=device, _extra_files=files)
        if json.loads(files[METADATA] or "{}").get("kind") == "forecaster":
            return module.eval()
    return ExportedPotential(path, device).eval()


__all__ = ["export", "load_exported", "ExportedPotential", "ScriptablePotential", "export_program", "FORMATS"]
