"""Data sets as uint8 tensors: official layouts and image folders, a decode-once cache, subsets."""
from .catalog import (DATASETS, IMAGENET100_CLASSES, SPLITS, DatasetNotFoundError, describe, dataset_names,
                      load_dataset, locate)
from .imagedata import ImageData, balanced_subset, first_classes
from .synthetic import make_synthetic

__all__ = ["DATASETS", "IMAGENET100_CLASSES", "SPLITS", "DatasetNotFoundError", "ImageData", "balanced_subset",
           "first_classes", "dataset_names", "describe", "load_dataset", "locate", "make_synthetic"]
