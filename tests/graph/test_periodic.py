"""mlip.graph.periodic: the periodic directions come from pbc alone, and no file of the package decides
periodicity from which cell vectors are zero."""

import pathlib
import re

import pytest
import torch

import mlip
from mlip.graph.periodic import periodic_axes, periodic_projector

F64 = torch.float64


def test_axes_span_the_periodic_vectors_only():
    cell = torch.tensor([[[3.0, 0.0, 0.0], [1.0, 2.5, 0.0], [0.7, -0.4, 12.0]]], dtype=F64)
    bulk = periodic_axes(cell, torch.tensor([[True, True, True]]))[0]
    torch.testing.assert_close(bulk @ bulk.T, torch.eye(3, dtype=F64))
    torch.testing.assert_close(bulk[0], torch.tensor([1.0, 0.0, 0.0], dtype=F64))
    slab = periodic_projector(cell, torch.tensor([[True, True, False]]))[0]
    torch.testing.assert_close(slab, torch.diag(torch.tensor([1.0, 1.0, 0.0], dtype=F64)))  # the vacuum vector is tilted
    side = periodic_axes(cell, torch.tensor([[False, True, True]]))[0]
    assert float(side[2].abs().max()) == 0.0
    torch.testing.assert_close(side[0], cell[0, 1] / cell[0, 1].norm())
    wire = periodic_projector(cell, torch.tensor([[False, False, True]]))[0]
    a3 = cell[0, 2] / cell[0, 2].norm()
    torch.testing.assert_close(wire, torch.outer(a3, a3))
    boxed = periodic_projector(12.0 * torch.eye(3, dtype=F64)[None], torch.tensor([[False, False, False]]))
    assert float(boxed.abs().max()) == 0.0


def test_a_batch_mixes_molecules_slabs_and_crystals():
    cells = torch.stack([10.0 * torch.eye(3, dtype=F64)] * 3)
    pbc = torch.tensor([[False] * 3, [True, True, False], [True] * 3])
    p = periodic_projector(cells, pbc)
    torch.testing.assert_close(torch.diagonal(p, dim1=1, dim2=2),
                               torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 0.0], [1.0, 1.0, 1.0]], dtype=F64))


# A line that compares a cell, lattice or box (or its volume) with zero decides periodicity from the
# cell's vectors. The lines that look so but do not: each with the reason.
ALLOWED = {
    "has_volume = volume > 1e-9": "stress is divided by the volume; periodicity is the projector's, from pbc",
}
CELL = re.compile(r"\b(cell|cells|lattice|box|volume)\b", re.I)
ZERO_TEST = re.compile(r"(\.any\(|\.all\(|nonzero|[!=]= ?0(\.0)?\b|> ?0(\.0)?\b|[<>] ?1e-|\.sum\(-1\) ?>)")


def test_no_file_of_the_package_decides_periodicity_from_the_cell():
    root = pathlib.Path(mlip.__file__).parent
    files = [f for f in sorted(root.rglob("*")) if f.suffix in (".py", ".cpp", ".h")]
    assert len(files) > 50
    found = []
    for f in files:
        for number, line in enumerate(f.read_text().splitlines(), 1):
            code = re.sub(r"f?(\"[^\"]*\"|'[^']*')", "''", line)  # string literals are words, not tests
            code = code.split("#")[0].split("//")[0].strip()
            if CELL.search(code) and ZERO_TEST.search(code) and "pbc" not in code and code not in ALLOWED:
                found.append(f"{f.relative_to(root)}:{number}: {code}")
    assert not found, "periodicity read from the cell's vectors (read pbc instead):\n" + "\n".join(found)


@pytest.mark.parametrize("line", ["nonzero = (lattice * lattice).sum(-1) > 0", "if cell.any():",
                                  "periodic = np.linalg.norm(cell, axis=1) > 0", "if atoms.cell.volume < 1e-9:"])
def test_the_check_catches_what_it_looks_for(line):
    assert CELL.search(line) and ZERO_TEST.search(line)
