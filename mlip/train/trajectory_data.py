"""TrajectoryDataModule: a forecaster's training pairs from MD trajectories, split by time."""

from __future__ import annotations

from typing import Optional, Sequence, Union

import numpy as np

from mlip.data import DataError, compute_statistics
from mlip.data.trajectory import ForecastPairs, Trajectory, time_block_splits
from mlip.train.data import AtomicDataModule

Paths = Union[str, Sequence[str]]


def _paths(value: Optional[Paths]) -> list[str]:
    if value is None:
        return []
    return [str(value)] if isinstance(value, str) else [str(v) for v in value]


class TrajectoryDataModule(AtomicDataModule):
    """Pairs (state at frame t, displacement and velocity at t + stride) of MD trajectories
    (:mod:`mlip.data.trajectory`: extxyz, ASE .traj, LAMMPS dumps, with velocities).

    Splits by time, never by random frames: without separate ``val`` / ``test`` files, each
    training trajectory gives its first 1 - val_fraction - test_fraction of frames to training,
    the next stretch to validation and the last to testing, and no pair spans two stretches.

    Args:
        train, val, test: a trajectory file or a list of them.
        stride: frames between a state and its target; the forecast interval is stride x the frames'
            time step (the same in every file).
        format: "extxyz", "traj" or "lammps-dump-text" (guessed from the suffix).
        md_timestep: fs per MD step, for LAMMPS dumps. frame_interval: fs between frames, for files
            that carry no times.
        val_fraction: the stretch of each training trajectory after the training one that validates.
        test_fraction: the last stretch of each training trajectory, for testing.
        batch_size: pairs per batch (val_batch_size, batch_atoms, num_workers, augment_rotations,
            split_seed: as AtomicDataModule's).
        max_statistics_frames: statistics (RMS displacement and velocity, neighbours) from at most
            this many training pairs, evenly spaced.
    """

    def __init__(self, train: Paths, val: Optional[Paths] = None, test: Optional[Paths] = None, stride: int = 1,
                 format: Optional[str] = None, md_timestep: Optional[float] = None,
                 frame_interval: Optional[float] = None, val_fraction: float = 0.1, test_fraction: float = 0.1,
                 batch_size: int = 8, val_batch_size: Optional[int] = None, num_workers: int = 0,
                 max_statistics_frames: int = 2000, augment_rotations: bool = False,
                 batch_atoms: Optional[int] = None, split_seed: int = 0):
        super().__init__(train=_paths(train)[0] if _paths(train) else "", batch_size=batch_size,
                         val_batch_size=val_batch_size, num_workers=num_workers,
                         max_statistics_frames=max_statistics_frames, augment_rotations=augment_rotations,
                         batch_atoms=batch_atoms, val_fraction=val_fraction, test_fraction=test_fraction,
                         split_seed=split_seed)
        self.files = {"train": _paths(train), "val": _paths(val), "test": _paths(test)}
        if not self.files["train"]:
            raise ValueError("TrajectoryDataModule needs at least one training trajectory (data.train=...)")
        self.stride = int(stride)
        self.read_options = dict(format=format, md_timestep=md_timestep, frame_interval=frame_interval)

    def _read(self, paths: list[str]) -> list[Trajectory]:
        return [Trajectory.read(p, **self.read_options) for p in paths]

    def build_splits(self) -> dict:
        if self.splits:
            return self.splits
        train = self._read(self.files["train"])
        separate = {k: self._read(self.files[k]) for k in ("val", "test") if self.files[k]}
        fractions = {k: (0.0 if k in separate else getattr(self, f"{k}_fraction")) for k in ("val", "test")}
        blocks = [time_block_splits(len(t), self.stride, fractions["val"], fractions["test"]) for t in train]
        for name in ("train", "val", "test"):
            if name in separate:
                self.splits[name] = ForecastPairs(separate[name], self.stride)
            elif any(name in b for b in blocks):
                self.splits[name] = ForecastPairs(train, self.stride,
                                                  [b.get(name, np.zeros(0, dtype=int)) for b in blocks])
        intervals = {round(s.interval, 9) for s in self.splits.values()}
        if len(intervals) > 1:
            raise DataError(f"the splits' forecast intervals differ ({sorted(intervals)} fs): every file must have "
                            "the same time between frames", self.files["val"][0] if self.files["val"] else None)
        return self.splits

    @property
    def interval(self) -> float:
        """The forecast interval, fs."""
        return float(self.build_splits()["train"].interval)

    def compute_statistics(self, cutoff: float, prior=None) -> dict:
        """The training split's RMS displacement and velocity components, the forecast interval, the
        neighbour count and structure sizes (mlip.data.compute_statistics)."""
        train = self.build_splits()["train"]
        n = len(train)
        picks = np.unique(np.linspace(0, n - 1, min(n, self.max_statistics_frames)).round().astype(int))
        stats = compute_statistics(train, cutoff=cutoff, indices=picks)
        sums = {"displacement": 0.0, "velocities": 0.0}
        components = 0
        for i in picks:
            data = train[int(i)]
            sums["displacement"] += float((data.displacement ** 2).sum())
            sums["velocities"] += float((data.velocities ** 2).sum())
            components += data.displacement.numel()
        stats.update(displacement_rms=(sums["displacement"] / components) ** 0.5,
                     velocity_rms=(sums["velocities"] / components) ** 0.5, interval=train.interval,
                     stride=self.stride, pairs={k: len(v) for k, v in self.splits.items()})
        self.statistics = stats
        if self.batch_atoms is not None:
            mean_atoms = stats["atoms_per_structure"]["mean"]
            self.batch_size = self.val_batch_size = max(1, int(round(self.batch_atoms / mean_atoms)))
        return stats

    def check(self, required) -> None:
        self.build_splits()  # reading checks every frame: velocities, spacing, the same atoms
