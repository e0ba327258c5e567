"""One reader per source format; :func:`mlip.data.open_dataset` picks among them."""

from mlip.data.readers.ase_db import ASEDatabaseDataset
from mlip.data.readers.base import ConcatFrames, FrameDataset, IndexedFrames
from mlip.data.readers.extxyz import ExtXYZDataset
from mlip.data.readers.md17 import MD17Dataset
from mlip.data.readers.mptrj import MPtrjDataset, MPtrjExtXYZDataset
from mlip.data.readers.oc20 import OC20ExtXYZDataset, OC20LMDBDataset, write_oc20_lmdb

__all__ = ["ASEDatabaseDataset", "ConcatFrames", "FrameDataset", "IndexedFrames", "ExtXYZDataset",
           "MD17Dataset", "MPtrjDataset", "MPtrjExtXYZDataset", "OC20ExtXYZDataset", "OC20LMDBDataset", "write_oc20_lmdb"]
