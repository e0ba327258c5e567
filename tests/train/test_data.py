import pytest

from mlip.train.data import AtomicDataModule, EpochShuffleSampler, rmd17


def test_fraction_split_is_seeded_disjoint_and_capped(data_dir):
    path = str(data_dir / "rmd17" / "rmd17_ethanol_train_01.npz")
    a = AtomicDataModule(train=path, val_fraction=0.05, test_fraction=0.1, train_size=100, split_seed=3).build_splits()
    b = AtomicDataModule(train=path, val_fraction=0.05, test_fraction=0.1, train_size=100, split_seed=3).build_splits()
    assert (len(a["train"]), len(a["val"]), len(a["test"])) == (100, 50, 100)
    assert a["train"].indices == b["train"].indices
    assert not set(a["train"].indices) & set(a["val"].indices) and not set(a["val"].indices) & set(a["test"].indices)


def test_bootstrap_resamples_the_training_split_only(data_dir):
    path = str(data_dir / "rmd17" / "rmd17_ethanol_train_01.npz")
    plain = AtomicDataModule(train=path, val_fraction=0.05, train_size=200).build_splits()
    boot = [AtomicDataModule(train=path, val_fraction=0.05, train_size=200, bootstrap_seed=s).build_splits()
            for s in (1, 2)]
    for splits in boot:
        assert len(splits["train"]) == 200 and set(splits["train"].indices) <= set(plain["train"].indices)
        assert len(set(splits["train"].indices)) < 150  # drawn with replacement: about 63% distinct
        assert splits["val"].indices == plain["val"].indices
    assert boot[0]["train"].indices != boot[1]["train"].indices


def test_index_files_and_separate_files(data_dir, tmp_path):
    path = str(data_dir / "rmd17" / "rmd17_ethanol_train_01.npz")
    (tmp_path / "train.csv").write_text("\n".join(map(str, range(10))))
    (tmp_path / "val.csv").write_text("10\n11\n")
    splits = AtomicDataModule(train=path, train_indices=str(tmp_path / "train.csv"),
                              val_indices=str(tmp_path / "val.csv")).build_splits()
    assert splits["train"].indices == list(range(10)) and splits["val"].indices == [10, 11]
    dm = rmd17(molecule="ethanol", root=str(data_dir / "rmd17"), train_size=950, val_fraction=0.05)
    splits = dm.build_splits()
    assert (len(splits["train"]), len(splits["val"]), len(splits["test"])) == (950, 50, 1000)
    assert splits["test"].path.endswith("rmd17_ethanol_test_01.npz")


def test_epoch_sampler_depends_on_seed_and_epoch_and_splits_across_ranks():
    s = EpochShuffleSampler(10, seed=1, rank=0, world_size=1)
    first = list(s)
    assert list(s) == first and sorted(first) == list(range(10))
    s.set_epoch(1)
    assert list(s) != first
    s.set_epoch(0)
    ranks = [list(EpochShuffleSampler(10, seed=1, rank=r, world_size=2)) for r in (0, 1)]
    assert ranks[0] == first[0::2] and ranks[1] == first[1::2]
    uneven = [list(EpochShuffleSampler(7, seed=1, rank=r, world_size=2)) for r in (0, 1)]
    assert len(uneven[0]) == len(uneven[1]) == 4 and set(uneven[0] + uneven[1]) == set(range(7))


@pytest.mark.parametrize("molecule, atoms, batch", [("ethanol", 9, 11), ("aspirin", 21, 5)])
def test_batch_atoms_sets_structures_per_batch_from_the_training_split(data_dir, molecule, atoms, batch):
    dm = rmd17(molecule=molecule, root=str(data_dir / "rmd17"), train_size=40, val_fraction=0.05, batch_size=4,
               batch_atoms=100)
    dm.cutoff = 4.0
    assert dm.batch_size == 4  # until the statistics of the training split are known
    dm.compute_statistics(cutoff=4.0)
    assert dm.batch_size == dm.val_batch_size == batch  # round(100 / atoms)
    first = next(iter(dm.train_dataloader()))
    assert int(first.num_graphs) == batch and first.num_nodes == batch * atoms


def test_batch_atoms_gives_at_least_one_structure_and_refuses_nonsense(data_dir):
    dm = rmd17(molecule="ethanol", root=str(data_dir / "rmd17"), train_size=10, batch_atoms=2)
    dm.compute_statistics(cutoff=4.0)
    assert dm.batch_size == 1
    with pytest.raises(ValueError, match="batch_atoms"):
        rmd17(molecule="ethanol", root=str(data_dir / "rmd17"), batch_atoms=0)
