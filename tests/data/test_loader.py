"""Readers hold file handles (LMDB, open files); they must work in DataLoader worker processes."""

from functools import partial

import pytest
import torch
from torch.utils.data import DataLoader

from mlip.data import open_dataset
from mlip.data.readers import write_oc20_lmdb
from mlip.graph import collate


@pytest.mark.parametrize("rel", ["omol25/omol25_noble_gas_DERIVED.aselmdb", "mptrj/MPtrj_sample_DERIVED_from_ffast.json",
                                 "extxyz/3bpa_train_300K.xyz", "oc20.lmdb"])
def test_workers_give_the_same_batches(data_dir, tmp_path, rel):
    if rel == "oc20.lmdb":
        write_oc20_lmdb(tmp_path / rel, open_dataset(data_dir / "extxyz" / "3bpa_train_300K.xyz", indices=range(40)))
        ds = open_dataset(tmp_path / rel)
    else:
        ds = open_dataset(data_dir / rel)
    ds[0]  # handles opened in the parent first, as a training script would
    make = partial(DataLoader, ds, batch_size=4, collate_fn=partial(collate, cutoff=4.0))
    serial = list(make(num_workers=0))[:5]
    parallel = list(make(num_workers=2, multiprocessing_context="fork"))[:5]
    for a, b in zip(serial, parallel):
        assert torch.equal(a.idx, b.idx)
        torch.testing.assert_close(a.energy, b.energy)
        assert torch.equal(a.edge_index, b.edge_index)
