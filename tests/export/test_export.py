"""Exported models (TorchScript, torch.export) equal the eager model for every potential, load
through mlip.load / MLIPCalculator, and the TorchScript file runs with torch alone and from C++."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import mlip
from mlip.calculator import MLIPCalculator
from mlip.export import export
from mlip.models import registered
from tests.models.structures import STRUCTURES, data, make


def assert_same(eager: dict, exported: dict, rtol: float = 1e-6) -> None:
    for key in ("energy", "forces", "stress"):
        a, b = eager[key].detach(), exported[key].detach()
        scale = float(a.abs().max().clamp(min=1e-12))
        assert float((a - b).abs().max()) <= rtol * scale, f"{key}: exported differs from eager"


@pytest.mark.parametrize("fmt", ["torchscript", "export"])
@pytest.mark.parametrize("name", registered())
def test_exported_model_equals_eager(name, fmt, tmp_path):
    model = make(name).eval()
    loaded = mlip.load(export(model, tmp_path / f"{name}.{fmt}", fmt))
    assert loaded.kind == fmt and loaded.dtype == torch.float64
    for structure in STRUCTURES:
        assert_same(model(data(structure, torch.float64)), loaded(data(structure, torch.float64)))


FRAME_AVERAGED = {"transip": dict(frame_averaging="so3"),
                  "escaip": dict(direct_forces=True, frame_averaging="o3")}


@pytest.mark.filterwarnings("ignore:EScAIP with direct_forces")
@pytest.mark.parametrize("fmt", ["torchscript", "export"])
@pytest.mark.parametrize("name", list(FRAME_AVERAGED))
def test_frame_averaged_models_export_and_stay_equivariant(name, fmt, tmp_path):
    """Frame averaging (mlip.nn.frames) survives export: the file gives the eager model's outputs, and
    those are exactly equivariant; an MD engine's domain decomposition refuses the model."""
    from mlip.export import ScriptablePotential
    from mlip.testing import assert_equivariant

    model = make(name, **FRAME_AVERAGED[name]).eval()
    loaded = mlip.load(export(model, tmp_path / f"{name}-frames.{fmt}", fmt))
    for structure in [*STRUCTURES, "boxed_ethanol"]:  # the box of a molecule with pbc False plays no part
        assert_same(model(data(structure, torch.float64)), loaded(data(structure, torch.float64)))
    assert_equivariant(loaded, data("ethanol", torch.float64), rtol=1e-8)
    if fmt == "torchscript":
        scripted = torch.jit.script(ScriptablePotential(model))
        pos = data("ethanol").pos
        with pytest.raises(Exception, match="domain decomposition"):
            scripted.lammps(pos, data("ethanol").atomic_numbers, torch.zeros(2, 0, dtype=torch.long), len(pos))


class _PbcFromCell(torch.nn.Module):
    """The ``compute`` of a TorchScript file exported before pbc was one of its inputs (it read
    periodicity from the cell's non-zero vectors)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    @torch.jit.export
    def compute(self, pos: torch.Tensor, atomic_numbers: torch.Tensor, cell: torch.Tensor, edge_index: torch.Tensor,
                cell_shifts: torch.Tensor, batch: torch.Tensor, num_graphs: int, charge: torch.Tensor,
                spin: torch.Tensor, compute_forces: bool = True, compute_stress: bool = True):
        pbc = (cell * cell).sum(-1) > 0
        return self.model.compute(pos, atomic_numbers, cell, pbc, edge_index, cell_shifts, batch, num_graphs,
                                  charge, spin, compute_forces, compute_stress)

    def forward(self, pos: torch.Tensor) -> torch.Tensor:
        return pos


def test_files_exported_before_pbc_was_an_input_still_load(tmp_path):
    """Their metadata names no inputs: mlip.load calls their compute without pbc, and they give what
    they gave (here on a crystal, where both readings of periodicity agree)."""
    from mlip.export import metadata

    model = make("facet").eval()
    meta = {k: v for k, v in metadata(model).items() if k != "inputs"}
    path = tmp_path / "old.pt"
    torch.jit.save(torch.jit.script(_PbcFromCell(model)), str(path), _extra_files={"mlip.json": json.dumps(meta)})
    loaded = mlip.load(path)
    assert not loaded.takes_pbc
    assert_same(model(data("triclinic", torch.float64)), loaded(data("triclinic", torch.float64)))


# Facet's non-default options: Gaunt products (correlation 3: the physics suite), the radial MLP (the quickstart's)
FACET_OPTIONS = {"gaunt": dict(tensor_product="gaunt", correlation=2, num_layers=1), "radial-mlp": dict(radial="mlp")}


@pytest.mark.parametrize("fmt", ["torchscript", "export"])
@pytest.mark.parametrize("option", list(FACET_OPTIONS))
def test_facet_options_export(option, fmt, tmp_path):
    model = make("facet", **FACET_OPTIONS[option]).eval()
    loaded = mlip.load(export(model, tmp_path / f"{option}.{fmt}", fmt))
    for structure in STRUCTURES:
        assert_same(model(data(structure, torch.float64)), loaded(data(structure, torch.float64)))


def test_torchscript_runs_with_torch_alone(tmp_path, operator_library):
    """A fresh interpreter that cannot import mlip loads the compiled operator library and the file,
    and gets the eager numbers."""
    model = make("facet").eval()
    path = export(model, tmp_path / "model.pt", "torchscript")
    atoms = STRUCTURES["triclinic"]()
    eager = model(data("triclinic", torch.float64))
    np.savez(tmp_path / "input.npz", pos=atoms.positions, z=atoms.numbers, cell=np.asarray(atoms.cell),
             pbc=atoms.pbc)
    script = (
        "import sys; sys.modules['mlip'] = None\n"  # importing mlip would fail
        "import numpy as np, torch\n"
        f"torch.ops.load_library({str(operator_library)!r})\n"
        f"d = np.load({str(tmp_path / 'input.npz')!r})\n"
        f"m = torch.jit.load({str(path)!r})\n"
        "out = m(torch.tensor(d['pos']), torch.tensor(d['z']), torch.tensor(d['cell']), torch.tensor(d['pbc']))\n"
        "print(float(out['energy'][0])); print(out['forces'].tolist()); print(out['stress'].tolist())\n")
    lines = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.split("\n")
    torch.testing.assert_close(torch.tensor(float(lines[0]), dtype=torch.float64), eager["energy"][0], rtol=1e-10,
                               atol=0)
    torch.testing.assert_close(torch.tensor(json.loads(lines[1]), dtype=torch.float64), eager["forces"].detach(),
                               rtol=1e-8, atol=1e-12)
    torch.testing.assert_close(torch.tensor(json.loads(lines[2]), dtype=torch.float64), eager["stress"].detach(),
                               rtol=1e-8, atol=1e-12)


def test_torchscript_weights_want_no_gradient_and_the_callers_model_keeps_them(tmp_path):
    """The scripted backward computes what forces and stress need, not the weights' gradients; the
    exported model (a copy) is frozen, the caller's keeps its trainable weights."""
    model = make("facet")
    scripted = torch.jit.load(export(model, tmp_path / "model.pt", "torchscript"))
    assert not any(p.requires_grad for p in scripted.parameters())
    assert all(p.requires_grad for p in model.parameters())


def test_calculator_accepts_exported_file(tmp_path):
    model = make("facet").eval()
    path = export(model, tmp_path / "model.pt", "torchscript")
    atoms = STRUCTURES["slab"]()
    atoms.calc = MLIPCalculator(model)
    eager = (atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress())
    atoms.calc = MLIPCalculator(str(path))
    np.testing.assert_allclose(atoms.get_potential_energy(), eager[0], rtol=1e-10)
    np.testing.assert_allclose(atoms.get_forces(), eager[1], rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(atoms.get_stress(), eager[2], rtol=1e-8, atol=1e-12)


def test_exported_model_rejects_unknown_elements(tmp_path):
    model = make("facet", species=[1, 6, 8]).eval()
    loaded = mlip.load(export(model, tmp_path / "model.pt", "torchscript"))
    with pytest.raises(Exception, match="not trained on the elements with atomic numbers \\[29\\]"):
        loaded(data("slab", torch.float64))


def test_cpp_example_compiles_and_matches(tmp_path, operator_library):
    """examples/cpp/mlip_energy.cpp, compiled against the installed libtorch and linked with mlip's
    operator library (its CMakeLists compiles the operators in instead), gives the eager numbers."""
    from mlip.export.native import compile_command

    source = Path(__file__).resolve().parents[2] / "examples" / "cpp" / "mlip_energy.cpp"
    binary = tmp_path / "mlip_energy"
    link = ["-Wl,--no-as-needed", str(operator_library), f"-Wl,-rpath,{operator_library.parent}"]
    subprocess.run(compile_command([source], binary, shared=False) + link, check=True, capture_output=True, text=True)

    model = make("facet").eval()
    path = export(model, tmp_path / "model.pt", "torchscript")
    atoms = STRUCTURES["si2"]()
    header = " ".join(f"{c:.17g}" for c in np.asarray(atoms.cell).ravel()) + " " + " ".join(
        str(int(p)) for p in atoms.pbc)
    body = "\n".join(f"{z} {x:.17g} {y:.17g} {w:.17g}" for z, (x, y, w) in zip(atoms.numbers, atoms.positions))
    (tmp_path / "structure.txt").write_text(header + "\n" + body + "\n")
    lines = subprocess.run([str(binary), str(path), str(tmp_path / "structure.txt")], capture_output=True, text=True,
                           check=True).stdout.splitlines()
    eager = model(data("si2", torch.float64))
    energy = float(next(l for l in lines if l.startswith("energy")).split()[1])
    forces = np.array([[float(v) for v in l.split()[1:]] for l in lines if l.startswith("force")])
    stress = np.array([[float(v) for v in l.split()[1:]] for l in lines if l.startswith("stress")])
    np.testing.assert_allclose(energy, float(eager["energy"][0]), rtol=1e-10)
    np.testing.assert_allclose(forces, eager["forces"].detach().numpy(), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(stress, eager["stress"][0].detach().numpy(), rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("fmt", ["torchscript", "export"])
def test_exported_models_carry_the_placed_prior(fmt, tmp_path):
    """A model whose prior is placed by training distances, on a squeezed ethanol (pairs inside their
    windows, the learned part frozen): the exported file and the LAMMPS entry point give the eager
    numbers, which differ from those without the placement."""
    from mlip.export import ScriptablePotential
    from mlip.graph import build_graph

    model = make("facet").eval()
    squeezed = data("ethanol", torch.float64)
    squeezed.pos = squeezed.pos * 0.7
    plain = model(squeezed)
    model.set_pair_min_distance([(1, 1, 1.6), (1, 6, 1.05), (1, 8, 0.95), (6, 6, 1.45), (6, 8, 1.35)])
    eager = model(squeezed)
    assert abs(float(eager["energy"] - plain["energy"])) > 1e-3
    loaded = mlip.load(export(model, tmp_path / f"placed.{fmt}", fmt))
    assert_same(eager, loaded(squeezed))
    if fmt == "torchscript":
        graph = build_graph(squeezed.clone(), model.cutoff)
        scripted = torch.jit.script(ScriptablePotential(model))
        rank = scripted.lammps(graph.pos, graph.atomic_numbers, graph.edge_index, graph.num_nodes)
        torch.testing.assert_close(rank["energy"], eager["energy"][0].detach(), rtol=1e-12, atol=1e-10)
        torch.testing.assert_close(rank["forces"], eager["forces"].detach(), rtol=1e-9, atol=1e-10)
