"""AtomicDataModule: datasets, splits, statistics of the training split, and batched graphs."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Optional

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from mlip.data import DataError, compute_statistics, open_dataset, read_indices
from mlip.data.readers import IndexedFrames
from mlip.graph import collate


def check_targets(dataset, required, name: str) -> None:
    """Fail at start-up, not at step 1000, if the first frame lacks a target the loss needs."""
    first = dataset[0]
    for key in required:
        if key not in first:
            raise DataError(f"the {name} split has no '{key}' targets, which the loss weights ask for "
                            f"(set loss.{key}_weight=0 to train without them)",
                            getattr(dataset, "path", None), int(first.idx) if "idx" in first else 0, key)


class EpochShuffleSampler(Sampler):
    """A new random order each epoch that depends only on (seed, epoch): a run resumed from a
    checkpoint sees the same batches as one that never stopped. Lightning calls ``set_epoch``.

    Under DDP each of the ``world_size`` processes takes every world_size-th index of the epoch's
    order (padded to a multiple), so that the processes' batches together are exactly the batch a
    single process would draw with world_size times the batch size.
    """

    def __init__(self, size: int, seed: int = 0, rank: Optional[int] = None, world_size: Optional[int] = None):
        distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
        self.world_size = world_size or (torch.distributed.get_world_size() if distributed else 1)
        self.rank = rank if rank is not None else (torch.distributed.get_rank() if distributed else 0)
        self.size, self.seed, self.epoch = size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(self.size, generator=generator).tolist()
        if self.world_size > 1:
            order += order[: len(self) * self.world_size - self.size]
            order = order[self.rank::self.world_size]
        return iter(order)

    def __len__(self) -> int:
        return -(-self.size // self.world_size)


class AtomicDataModule(L.LightningDataModule):
    """Train/val/test splits of mlip datasets.

    Splits, in order of precedence: separate files (``val``, ``test``); index files
    (``train_indices`` / ``val_indices`` / ``test_indices``: one integer per line, or an npz with
    train_idx/val_idx/test_idx); else ``val_fraction`` / ``test_fraction`` of ``train`` drawn with
    ``split_seed``. ``train_size`` caps the training split (after the split). ``bootstrap_seed``:
    the training split becomes a bootstrap resample of itself (same size, drawn with replacement with
    this seed; a committee member's data, ``ensemble_bootstrap``); validation and test stay as they are.

    Args:
        train, val, test: dataset paths (any format :func:`mlip.data.open_dataset` reads).
        format: reader format (guessed if None). options: reader options (dict).
        batch_size, val_batch_size: structures per batch. num_workers: DataLoader workers.
        batch_atoms: when set, structures per batch (training and validation) become
            round(batch_atoms / mean atoms per structure of the training split), at least 1, once the
            statistics are computed: one setting gives batches of about the same number of atoms (and
            gradient noise) on a 9-atom and a 27-atom molecule. Overrides batch_size, val_batch_size.
        max_statistics_frames: statistics use at most this many training frames (evenly spaced).
        augment_rotations: turn every training batch by random rotations, one per structure
            (:mod:`mlip.train.augment`), for potentials that learn rotational symmetry.
    """

    def __init__(self, train: str, val: Optional[str] = None, test: Optional[str] = None,
                 format: Optional[str] = None, options: Optional[dict] = None,
                 train_indices: Optional[str] = None, val_indices: Optional[str] = None,
                 test_indices: Optional[str] = None, val_fraction: float = 0.05, test_fraction: float = 0.0,
                 train_size: Optional[int] = None, split_seed: int = 0, batch_size: int = 8,
                 val_batch_size: Optional[int] = None, num_workers: int = 0, max_statistics_frames: int = 20000,
                 augment_rotations: bool = False, bootstrap_seed: Optional[int] = None,
                 batch_atoms: Optional[int] = None):
        super().__init__()
        self.paths = {"train": train, "val": val, "test": test}
        self.index_files = {"train": train_indices, "val": val_indices, "test": test_indices}
        self.format = format
        self.options = dict(options or {})
        self.val_fraction, self.test_fraction = val_fraction, test_fraction
        self.train_size, self.split_seed = train_size, split_seed
        self.batch_size = batch_size
        self.val_batch_size = val_batch_size or batch_size
        if batch_atoms is not None and batch_atoms < 1:
            raise ValueError(f"batch_atoms must be a positive number of atoms, got {batch_atoms}")
        self.batch_atoms = batch_atoms
        self.num_workers = num_workers
        self.max_statistics_frames = max_statistics_frames
        self.augment_rotations = bool(augment_rotations)
        self.bootstrap_seed = bootstrap_seed
        self.cutoff: Optional[float] = None
        self.max_neighbors: Optional[int] = None
        self.splits: dict = {}
        self.statistics: Optional[dict] = None

    def _open(self, path, indices=None, split=None):
        return open_dataset(path, format=self.format, indices=indices, split=split, **self.options)

    def _index(self, which: str):
        path = self.index_files[which]
        if path is None:
            return None
        return read_indices(path, which if str(path).endswith(".npz") else None)

    def build_splits(self) -> dict:
        """Open the datasets and make the splits (idempotent)."""
        if self.splits:
            return self.splits
        base = self._open(self.paths["train"])
        n = len(base)
        order = np.random.default_rng(self.split_seed).permutation(n)
        n_val = 0 if self.paths["val"] or self.index_files["val"] else int(round(self.val_fraction * n))
        n_test = 0 if self.paths["test"] or self.index_files["test"] else int(round(self.test_fraction * n))
        drawn = {"val": order[:n_val], "test": order[n_val:n_val + n_test], "train": order[n_val + n_test:]}
        for which in ("train", "val", "test"):
            if which != "train" and self.paths[which]:
                self.splits[which] = self._open(self.paths[which], self._index(which))
                continue
            idx = self._index(which)
            if idx is None:
                idx = np.sort(drawn[which]) if which != "train" else drawn[which]
            if which == "train" and self.train_size is not None:
                idx = idx[: self.train_size]
            if which == "train" and self.bootstrap_seed is not None:
                idx = np.asarray(idx)[np.random.default_rng(self.bootstrap_seed).integers(0, len(idx), len(idx))]
            if len(idx):
                self.splits[which] = IndexedFrames(base, idx)
        if "train" not in self.splits:
            raise DataError("the training split is empty", self.paths["train"])
        return self.splits

    def compute_statistics(self, cutoff: float, prior=None) -> dict:
        """Statistics of the training split only (reference energies, neighbours, force RMS, ...),
        net of the model's fixed ``prior`` (``Potential.prior``) when it has one."""
        train = self.build_splits()["train"]
        n = len(train)
        frames = np.linspace(0, n - 1, min(n, self.max_statistics_frames)).round().astype(int)
        self.statistics = compute_statistics(train, cutoff=cutoff, indices=np.unique(frames), progress=n > 2000,
                                             prior=prior)
        if self.batch_atoms is not None:
            mean_atoms = self.statistics["atoms_per_structure"]["mean"]
            self.batch_size = self.val_batch_size = max(1, int(round(self.batch_atoms / mean_atoms)))
        return self.statistics

    def check(self, required) -> None:
        for which, ds in self.build_splits().items():
            check_targets(ds, required, which)

    def setup(self, stage: Optional[str] = None) -> None:
        self.build_splits()

    def _loader(self, which: str, shuffle: bool, batch_size: int):
        if self.cutoff is None:
            raise RuntimeError("AtomicDataModule.cutoff must be set (to the model's cutoff) before loading")
        sampler = EpochShuffleSampler(len(self.splits[which]), self.split_seed) if shuffle else None
        return DataLoader(self.splits[which], batch_size=batch_size, sampler=sampler, num_workers=self.num_workers,
                          collate_fn=partial(collate, cutoff=self.cutoff, max_neighbors=self.max_neighbors),
                          persistent_workers=self.num_workers > 0)

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        trainer = getattr(self, "trainer", None)
        if self.augment_rotations and trainer is not None and trainer.training:
            from mlip.train import augment

            rotations = augment.step_rotations(int(batch.num_graphs), self.split_seed, trainer.global_step,
                                               trainer.global_rank)
            batch = augment.rotate(batch, rotations.to(batch.pos.device))
        return batch

    def train_dataloader(self):
        return self._loader("train", True, self.batch_size)

    def val_dataloader(self):
        return self._loader("val", False, self.val_batch_size) if "val" in self.splits else []

    def test_dataloader(self):
        return self._loader("test", False, self.val_batch_size) if "test" in self.splits else []


def rmd17(molecule: str = "ethanol", root: str = "data/rmd17", split: str = "01", **kwargs) -> AtomicDataModule:
    """Revised MD17 with its published splits: train on rmd17_<molecule>_train_<split>.npz
    (``train_size`` / ``val_fraction`` divide it), test on rmd17_<molecule>_test_<split>.npz."""
    root = Path(root)
    kwargs.setdefault("test", str(root / f"rmd17_{molecule}_test_{split}.npz"))
    return AtomicDataModule(train=str(root / f"rmd17_{molecule}_train_{split}.npz"), **kwargs)
