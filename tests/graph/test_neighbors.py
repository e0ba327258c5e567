import numpy as np
import pytest
import torch

from mlip.data import open_dataset
from mlip.graph import radius_graph_pbc
from mlip.graph.neighbors import cap_neighbors
from tests.graph.brute_force import brute_force_neighbors

PBCS = [(True, True, True), (True, True, False), (True, False, False), (False, True, True), (False, False, False)]


def as_set(edge_index, shifts):
    return set(zip(edge_index[0].tolist(), edge_index[1].tolist(), *shifts.T.tolist()))


def random_cell(rng):
    lengths = rng.uniform(1.2, 8.0, size=3)
    cell = np.diag(lengths) + np.triu(rng.uniform(-0.6, 0.6, size=(3, 3)), k=1) * lengths[:, None]
    return cell[rng.permutation(3)] if rng.random() < 0.3 else cell  # not always upper-triangular


@pytest.mark.parametrize("backend", ["vesin", "torch"])
def test_matches_brute_force_on_random_cells(backend):
    rng = np.random.default_rng(2024)
    small = 0
    for trial in range(50):
        cell = random_cell(rng)
        n = int(rng.integers(1, 8))
        pos = rng.uniform(-0.5, 1.5, size=(n, 3)) @ cell  # some atoms outside the cell
        pbc = PBCS[trial % len(PBCS)] if trial % 7 else (True, True, True)
        cutoff = float(rng.uniform(2.5, 6.0))
        spacing = 1.0 / np.linalg.norm(np.linalg.inv(cell), axis=0)
        small += bool((spacing < cutoff).any())
        edge_index, shifts = radius_graph_pbc(torch.tensor(pos), torch.tensor(cell), torch.tensor(pbc), cutoff,
                                              backend=backend)
        assert as_set(edge_index, shifts) == brute_force_neighbors(pos, cell, pbc, cutoff), (trial, pbc, cutoff)
        assert edge_index.shape[1] == len(as_set(edge_index, shifts))  # no duplicates
    assert small >= 25  # most cells are thinner than the cutoff: many images


@pytest.mark.parametrize("backend", ["vesin", "torch"])
def test_molecule_matches_brute_force(data_dir, backend):
    frame = open_dataset(data_dir / "rmd17" / "rmd17_aspirin_train_01.npz")[3]
    edge_index, shifts = radius_graph_pbc(frame.pos, frame.cell[0], frame.pbc[0], 3.0, backend=backend)
    assert not shifts.any()
    expected = brute_force_neighbors(frame.pos.numpy(), np.zeros((3, 3)), [False] * 3, 3.0)
    assert as_set(edge_index, shifts) == expected and len(expected) > 50


def test_cap_keeps_nearest_with_deterministic_ties():
    # fcc: 12 neighbours at exactly the same distance; capping at 8 needs a tie rule
    from ase.build import bulk

    atoms = bulk("Cu", "fcc", a=3.6)
    pos, cell, pbc = (torch.tensor(x) for x in (atoms.positions, atoms.cell.array, atoms.pbc))
    full_ei, full_sh = radius_graph_pbc(pos, cell, pbc, 3.0)
    assert full_ei.shape[1] == 12
    capped_ei, capped_sh = radius_graph_pbc(pos, cell, pbc, 3.0, max_neighbors=8)
    assert capped_ei.shape[1] == 8
    dist = (full_sh.double() @ cell).norm(dim=1)
    rng = np.random.default_rng(0)
    for _ in range(5):  # whatever order the search returns, the same edges survive
        perm = torch.as_tensor(rng.permutation(12))
        keep = cap_neighbors(full_ei[0][perm], full_ei[1][perm], dist[perm], full_sh[perm], 8)
        assert as_set(full_ei[:, perm][:, keep], full_sh[perm][keep]) == as_set(capped_ei, capped_sh)


def test_cap_keeps_the_nearest():
    rng = np.random.default_rng(5)
    pos = torch.tensor(rng.uniform(0, 6, size=(40, 3)))
    cell = torch.eye(3, dtype=torch.float64) * 6
    pbc = torch.tensor([True] * 3)
    full_ei, full_sh = radius_graph_pbc(pos, cell, pbc, 4.0)
    cap_ei, cap_sh = radius_graph_pbc(pos, cell, pbc, 4.0, max_neighbors=10)

    def dists(ei, sh):
        return (pos[ei[1]] - pos[ei[0]] + sh.double() @ cell).norm(dim=1)

    full_d, cap_d = dists(full_ei, full_sh), dists(cap_ei, cap_sh)
    for t in range(40):
        kept = cap_d[cap_ei[1] == t]
        everything = torch.sort(full_d[full_ei[1] == t]).values
        assert len(kept) == min(10, len(everything))
        torch.testing.assert_close(torch.sort(kept).values, everything[: len(kept)])


def test_slab_with_a_zero_vacuum_vector_on_both_backends():
    pos = torch.tensor([[0.0, 0.0, 0.0], [1.8, 0.0, 1.8], [0.3, 1.7, -1.1]], dtype=torch.float64)
    cell = torch.tensor([[3.6, 0.0, 0.0], [0.4, 3.6, 0.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
    pbc = torch.tensor([True, True, False])
    results = [as_set(*radius_graph_pbc(pos, cell, pbc, 4.0, backend=b)) for b in ("vesin", "torch")]
    filled = cell.clone()
    filled[2, 2] = 1.0  # any third vector: no images are taken along it
    assert results[0] == results[1] == brute_force_neighbors(pos.numpy(), filled.numpy(), [True, True, False], 4.0)
