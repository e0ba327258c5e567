"""The dataset base every reader derives from: len(), [i] -> validated AtomicData, lazy reading."""

from __future__ import annotations

import bisect
import os
import sys
from collections import Counter
from typing import Sequence

import torch

from mlip.data.errors import DataError
from mlip.data.validate import validate


class Frames(torch.utils.data.Dataset):
    """What every mlip dataset shares: Python indexing (negative too) and iteration."""

    path: str | None = None

    def _resolve(self, index: int) -> int:
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"index {index} out of range for {n} frames of {self.path}")
        return index

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]


class FrameDataset(Frames):
    """A random-access sequence of AtomicData read lazily from ``path``.

    Subclasses implement ``_length()`` and ``_read(i) -> AtomicData``. Every frame is validated
    on read (:func:`mlip.data.validate.validate`); a bad or unreadable frame raises
    :class:`DataError` naming the file, frame and key. With ``on_error="skip"`` the dataset scans
    every frame once at open, drops the bad ones and reports how many it dropped and why
    (``skipped`` holds ``(frame, message)`` pairs); nothing is skipped silently.
    """

    format_name = "?"

    def __init__(self, path, on_error: str = "raise", min_distance: float = 0.1):
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        self.path = str(path)
        self.min_distance = min_distance
        self.on_error = on_error
        self._keep: list[int] | None = None
        self.skipped: list[tuple[int, str]] = []
        if not os.path.exists(self.path):
            raise DataError("no such file or directory", self.path)

    # -- to implement ---------------------------------------------------------------------
    def _length(self) -> int:
        raise NotImplementedError

    def _read(self, i: int):
        raise NotImplementedError

    # -- public ---------------------------------------------------------------------------
    def _load_frame(self, i: int):
        try:
            data = self._read(i)
            validate(data, source=self.path, frame=i, min_distance=self.min_distance)
        except DataError as err:
            raise err.at(self.path, i) from None
        except Exception as err:  # a corrupt file, a parse failure: say where
            raise DataError(f"cannot read ({type(err).__name__}: {err})", self.path, i) from err
        data.idx = torch.tensor([i], dtype=torch.long)
        return data

    def _count(self) -> int:
        """``_length()``, with any failure of a truncated or corrupt file as a DataError naming it."""
        try:
            return self._length()
        except DataError as err:
            raise err.at(self.path) from None
        except Exception as err:
            raise DataError(f"cannot read ({type(err).__name__}: {err})", self.path) from err

    def scan_and_skip(self, progress: bool = True) -> "FrameDataset":
        """Read every frame once, keep the good ones and report the bad ones on stderr."""
        from mlip.progress import progress as tqdm

        keep, skipped, reasons = [], [], Counter()
        for i in tqdm(range(self._count()), desc=f"checking {os.path.basename(self.path)}",
                      disable=not progress, unit="frame"):
            try:
                self._load_frame(i)
                keep.append(i)
            except DataError as err:
                skipped.append((i, str(err)))
                reasons[f"{err.key or 'frame'}: {err.reason.split(' (')[0]}"] += 1
        self._keep, self.skipped = keep, skipped
        if skipped:
            print(f"mlip: skipped {len(skipped)} of {len(keep) + len(skipped)} frames of {self.path}:",
                  file=sys.stderr)
            for reason, count in reasons.most_common():
                print(f"  {count} x {reason}", file=sys.stderr)
        return self

    def __len__(self) -> int:
        if self.on_error == "skip" and self._keep is None:
            self.scan_and_skip()
        return len(self._keep) if self._keep is not None else self._count()

    def __getitem__(self, index: int):
        index = self._resolve(index)
        return self._load_frame(self._keep[index] if self._keep is not None else index)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path!r}, {len(self)} frames)"


class ConcatFrames(Frames):
    """Several datasets (the files of a directory) seen as one; ``idx`` is the global index."""

    def __init__(self, datasets: Sequence[FrameDataset], path=None):
        self.datasets = list(datasets)
        self.path = str(path) if path is not None else None
        self.format_name = self.datasets[0].format_name if self.datasets else "?"
        self._ends: list[int] = []
        total = 0
        for ds in self.datasets:
            total += len(ds)
            self._ends.append(total)

    @property
    def skipped(self):
        return [(ds.path, i, msg) for ds in self.datasets for i, msg in ds.skipped]

    def __len__(self) -> int:
        return self._ends[-1] if self._ends else 0

    def __getitem__(self, index: int):
        index = self._resolve(index)
        k = bisect.bisect_right(self._ends, index)
        local = index - (self._ends[k - 1] if k else 0)
        data = self.datasets[k][local]
        data.idx = torch.tensor([index], dtype=torch.long)
        return data

    def __repr__(self) -> str:
        return f"ConcatFrames({self.path!r}, {len(self.datasets)} files, {len(self)} frames)"


class IndexedFrames(Frames):
    """A dataset restricted to given indices (a split); ``idx`` stays the index in the source."""

    def __init__(self, dataset, indices: Sequence[int]):
        self.dataset = dataset
        self.indices = [int(i) for i in indices]
        self.path = getattr(dataset, "path", None)
        self.format_name = getattr(dataset, "format_name", "?")
        n = len(dataset)
        bad = [i for i in self.indices if not -n <= i < n]
        if bad:
            raise DataError(f"split indices {bad[:5]} out of range for {n} frames", self.path, key="indices")

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int):
        return self.dataset[self.indices[self._resolve(index)]]
