"""Datasets: one reader per source, all producing :class:`AtomicData`.

    open_dataset(path, format=None, **options) -> dataset   # len(), [i] -> AtomicData
    AtomicData.from_ase(atoms) / .to_ase()
"""

from mlip.data.atomic_data import AtomicData
from mlip.data.errors import DataError
from mlip.data.formats import FORMATS, guess_format, open_dataset
from mlip.data.prepared import PreparedDataset, write_prepared
from mlip.data.splits import read_indices
from mlip.data.statistics import StatisticsAccumulator, compute_statistics
from mlip.data.validate import validate

__all__ = ["AtomicData", "DataError", "FORMATS", "guess_format", "open_dataset", "PreparedDataset",
           "write_prepared", "read_indices", "StatisticsAccumulator", "compute_statistics", "validate"]
