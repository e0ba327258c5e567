"""MD trajectories with velocities, and the training pairs of a forecaster made from them.

A trajectory is read whole into arrays (:class:`Trajectory`): positions (T,N,3) Å, velocities
(T,N,3) Å/fs, cells (T,3,3) Å, pbc (3,), atomic numbers and masses (N,) amu, and the time of each
frame (T,) fs. Sources:

- extended XYZ with a ``momenta`` column (ASE's, as ``mlip md`` writes) or a ``velocities``
  column in Å/fs; the time from each frame's ``time_fs`` (``mlip md``) or ``time`` (fs);
- ASE trajectory files (.traj) with momenta;
- LAMMPS text dumps (``dump custom ... id element x y z vx vy vz``, metal units), the time from
  each frame's TIMESTEP times ``md_timestep`` (fs per LAMMPS step, an option).

Files without times take ``frame_interval`` (fs between frames). Frames must be equally spaced in
time, carry velocities and have the same atoms in the same order; anything else raises
:class:`~mlip.data.DataError` naming the file, frame and key.

:class:`ForecastPairs` turns frames into training records: the state at frame t (``pos``,
``velocities``, ``masses``) and, ``stride`` frames later, the ``displacement`` (minimum image under
periodic boundaries) and ``next_velocities``. :func:`time_block_splits` splits a trajectory into
contiguous stretches (train, then validation, then test) with no pair spanning two of them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from mlip.data.atomic_data import AtomicData
from mlip.data.errors import DataError
from mlip.data.readers.base import Frames

TIME_KEYS = ("time_fs", "time")  # info keys holding a frame's time in fs
FORMATS = ("extxyz", "traj", "lammps-dump-text")


def trajectory_format(path: str) -> str:
    """The ASE format name of a trajectory file, from its suffix."""
    lower = path.lower()
    if lower.endswith((".xyz", ".extxyz", ".xyz.gz", ".extxyz.gz")):
        return "extxyz"
    if lower.endswith(".traj"):
        return "traj"
    if lower.endswith((".lammpstrj", ".dump", ".lammpstrj.gz")) or ".dump." in lower:
        return "lammps-dump-text"
    raise DataError(f"cannot tell the trajectory format from the name; pass format= one of {', '.join(FORMATS)}",
                    path)


def frame_velocities(atoms, source=None, frame=None) -> np.ndarray:
    """(N,3) Å/fs: an extxyz ``velocities`` column as it is, else ASE's momenta over the masses."""
    from ase import units

    if "velocities" in atoms.arrays:
        return np.asarray(atoms.arrays["velocities"], dtype=np.float64).reshape(len(atoms), 3)
    if "momenta" in atoms.arrays:
        return atoms.get_velocities() * units.fs  # Å per ASE time unit -> Å/fs
    raise DataError("no velocities: a forecaster trains on the velocities of an MD trajectory (an extxyz "
                    "'momenta' or 'velocities' column, momenta in an ASE .traj, vx vy vz in a LAMMPS dump)",
                    source, frame, "velocities")


def _frame_time(atoms, md_timestep: Optional[float], source, frame) -> Optional[float]:
    for key in TIME_KEYS:
        if key in atoms.info:
            return float(atoms.info[key])
    if "timestep" in atoms.info:  # a LAMMPS dump's TIMESTEP: an MD step count
        if md_timestep is None:
            raise DataError("a LAMMPS dump counts MD steps (TIMESTEP); pass md_timestep= (fs per step) to give "
                            "them a time", source, frame, "timestep")
        return float(atoms.info["timestep"]) * float(md_timestep)
    return None


@dataclass
class Trajectory:
    """One MD trajectory in arrays (see the module docstring for units)."""

    path: str
    positions: np.ndarray   # (T,N,3) Å
    velocities: np.ndarray  # (T,N,3) Å/fs
    cells: np.ndarray       # (T,3,3) Å
    pbc: np.ndarray         # (3,) bool
    numbers: np.ndarray     # (N,)
    masses: np.ndarray      # (N,) amu
    times: np.ndarray       # (T,) fs

    def __len__(self) -> int:
        return self.positions.shape[0]

    @property
    def interval(self) -> float:
        """fs between consecutive frames."""
        return float(self.times[1] - self.times[0])

    @classmethod
    def read(cls, path, format: Optional[str] = None, md_timestep: Optional[float] = None,
             frame_interval: Optional[float] = None, start: int = 0, stop: Optional[int] = None,
             every: int = 1) -> "Trajectory":
        """Read frames ``start:stop:every`` of a trajectory file, checking it as it goes.

        Args:
            format: "extxyz", "traj" or "lammps-dump-text" (guessed from the suffix if None).
            md_timestep: fs per MD step, for LAMMPS dumps (their TIMESTEP counts steps).
            frame_interval: fs between frames, for files that carry no times (ignored when they do).
        """
        import ase.io

        path = str(path)
        if not os.path.exists(path):
            raise DataError("no such file", path)
        fmt = format or trajectory_format(path)
        options = {"units": "metal"} if fmt == "lammps-dump-text" else {}
        positions, velocities, cells, times = [], [], [], []
        numbers = masses = pbc = None
        try:
            frames = ase.io.iread(path, index=slice(start, stop, every), format=fmt, **options)
            for k, atoms in enumerate(frames):
                frame = start + k * every
                if numbers is None:
                    numbers, masses, pbc = atoms.get_atomic_numbers(), atoms.get_masses(), atoms.get_pbc()
                elif len(atoms) != len(numbers) or not np.array_equal(atoms.get_atomic_numbers(), numbers):
                    raise DataError(f"the atoms differ from the first frame's ({len(atoms)} atoms against "
                                    f"{len(numbers)}, or other elements or order): a trajectory follows the same "
                                    "atoms", path, frame, "numbers")
                elif not np.array_equal(atoms.get_pbc(), pbc):
                    raise DataError(f"pbc {atoms.get_pbc().tolist()} differs from the first frame's "
                                    f"{pbc.tolist()}", path, frame, "pbc")
                velocities.append(frame_velocities(atoms, path, frame))
                positions.append(atoms.get_positions())
                cells.append(np.asarray(atoms.get_cell()))
                times.append(_frame_time(atoms, md_timestep, path, frame))
        except DataError:
            raise
        except Exception as error:  # the format's own parser
            raise DataError(f"cannot read as {fmt} ({type(error).__name__}: {error})", path) from error
        if len(positions) < 2:
            raise DataError(f"{len(positions)} frame(s): a trajectory needs at least two to make a forecast pair",
                            path, 0 if positions else None)
        if any(t is None for t in times):
            if frame_interval is None:
                frame = next(start + k * every for k, t in enumerate(times) if t is None)
                raise DataError(f"no time: give each frame {' or '.join(TIME_KEYS)} (fs) in its info, or pass "
                                "frame_interval= (fs between frames)", path, frame, TIME_KEYS[0])
            times = [float(frame_interval) * k for k in range(len(positions))]
        times = np.asarray(times, dtype=np.float64)
        check_even_spacing(times, path, start, every)
        return cls(path, np.stack(positions), np.stack(velocities), np.stack(cells), np.asarray(pbc, dtype=bool),
                   np.asarray(numbers), np.asarray(masses, dtype=np.float64), times)


def check_even_spacing(times: np.ndarray, path=None, start: int = 0, every: int = 1) -> None:
    """DataError naming the first frame whose time step differs from the first one's (relative 1e-6),
    or where time does not advance."""
    steps = np.diff(times)
    if steps[0] <= 0:
        raise DataError(f"time does not advance ({times[0]:g} fs, then {times[1]:g} fs)", path, start + every,
                        TIME_KEYS[0])
    bad = np.nonzero(np.abs(steps - steps[0]) > 1e-6 * abs(steps[0]))[0]
    if len(bad):
        k = int(bad[0]) + 1
        raise DataError(f"frames are not equally spaced in time: {steps[0]:g} fs between the first two, "
                        f"{steps[k - 1]:g} fs before this one", path, start + k * every, TIME_KEYS[0])


def minimum_image(delta: np.ndarray, cell: np.ndarray, pbc: np.ndarray) -> np.ndarray:
    """(N,3) Å: displacements folded to the nearest image along the periodic directions."""
    if not pbc.any():
        return delta
    frac = delta @ np.linalg.inv(cell)
    frac[:, pbc] -= np.round(frac[:, pbc])
    return frac @ cell


class ForecastPairs(Frames):
    """Training records of a forecaster from trajectories: ``[i]`` -> AtomicData with the state at frame
    t (pos, velocities Å/fs, masses amu) and the targets ``displacement`` (N,3) Å and
    ``next_velocities`` (N,3) Å/fs at frame t + stride.

    Args:
        trajectories: Trajectory objects (pairs never span two of them).
        stride: frames between a state and its target (the forecast interval is stride x the frames'
            interval, the same in every trajectory).
        starts: per trajectory, the frames t that start a pair (default: every frame that has a
            frame ``stride`` later).
    """

    def __init__(self, trajectories: Sequence[Trajectory], stride: int,
                 starts: Optional[Sequence[np.ndarray]] = None):
        if stride < 1:
            raise ValueError(f"stride must be a positive number of frames, got {stride}")
        self.trajectories = list(trajectories)
        self.stride = int(stride)
        intervals = {round(t.interval * stride, 9) for t in self.trajectories}
        if len(intervals) > 1:
            raise DataError(f"the trajectories give different forecast intervals {sorted(intervals)} fs at stride "
                            f"{stride}", self.trajectories[1].path)
        self.interval = intervals.pop()
        if starts is None:
            starts = [np.arange(max(0, len(t) - stride)) for t in self.trajectories]
        self.pairs = [(k, int(s)) for k, ss in enumerate(starts) for s in ss]
        for k, s in self.pairs:
            if not 0 <= s or s + stride > len(self.trajectories[k]) - 1:
                raise DataError(f"frame {s} has no frame {stride} later ({len(self.trajectories[k])} frames)",
                                self.trajectories[k].path, s)
        self.path = self.trajectories[0].path if self.trajectories else None

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> AtomicData:
        k, t = self.pairs[self._resolve(index)]
        traj = self.trajectories[k]
        u = t + self.stride
        data = AtomicData.build(pos=traj.positions[t], atomic_numbers=traj.numbers, cell=traj.cells[t], pbc=traj.pbc,
                                idx=index, name=f"{os.path.basename(traj.path)}@{t}")
        data.velocities = _as_tensor(traj.velocities[t])
        data.masses = _as_tensor(traj.masses)
        delta = minimum_image(traj.positions[u] - traj.positions[t], traj.cells[t], traj.pbc)
        data.displacement = _as_tensor(delta)
        data.next_velocities = _as_tensor(traj.velocities[u])
        return data


def _as_tensor(array: np.ndarray):
    import torch

    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float64))


def time_block_splits(length: int, stride: int, val_fraction: float, test_fraction: float) -> dict:
    """Pair starts of one trajectory of ``length`` frames, split in time: train the first
    1 - val - test of the frames, validation the next stretch, test the last; a pair's target frame
    stays inside its stretch, so no split sees another's frames. Empty splits are left out."""
    n_test = int(round(test_fraction * length))
    n_val = int(round(val_fraction * length))
    bounds = {"train": (0, length - n_val - n_test), "val": (length - n_val - n_test, length - n_test),
              "test": (length - n_test, length)}
    out = {}
    for name, (a, b) in bounds.items():
        if b - a > stride:
            out[name] = np.arange(a, b - stride)
        elif name == "train" or b > a:
            raise DataError(f"the {name} stretch has {b - a} frames, not more than the stride {stride}: "
                            "too short a trajectory for this split (lower val_fraction / test_fraction or "
                            "the stride, or give separate files)")
    return out
