"""Datasets for btseg: loaders for BUSI, Dataset B and plain folders, splits, a phantom.

Example::

    >>> from btseg.data import open_dataset, make_splits           # doctest: +SKIP
    >>> ds = open_dataset("Dataset_BUSI_with_GT", include_normal=False)
    >>> splits = make_splits(ds, val=0.15, test=0.15, seed=0)
    >>> train = splits.select(ds, "train")
    >>> good, problems = scan("Dataset_BUSI_with_GT")   # every bad item, never raised
"""

from btseg.data.dataset import Dataset, SampleRef, SkippedFilesWarning
from btseg.data.layouts import detect_layout, open_dataset, scan
from btseg.data.sample import LABELS, Sample
from btseg.data.splits import KFold, Splits, find_duplicates, kfold, make_splits

__all__ = ["Dataset", "KFold", "LABELS", "Sample", "SampleRef", "SkippedFilesWarning", "Splits",
           "detect_layout", "find_duplicates", "kfold", "make_splits", "open_dataset", "scan"]
