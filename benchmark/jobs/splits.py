"""The data a job trains or probes on: the split standing for a data set at a scale."""
from __future__ import annotations

from ..data import ImageData, first_classes, load_dataset
from ..data import describe as describe_on_disk
from ..scales import Scale


def load_split(scale: Scale, dataset: str, split: str, *, data_root=None, store=None) -> ImageData:
    """The data standing for `dataset` at `scale` (a stand-in and subset where the scale says so)."""
    source = scale.source(dataset)
    per_class = source.train_per_class if split == "train" else source.test_per_class
    if source.dataset == "synthetic":
        data = load_dataset("synthetic", split, per_class=per_class, image_size=source.input_size)
    else:
        data = load_dataset(source.dataset, split, data_root=data_root, store=store, image_size=source.image_size,
                            per_class=per_class)
    return data if source.classes is None else first_classes(data, source.classes)


def whole_split_size(scale: Scale, dataset: str, split: str, *, data_root=None) -> int | None:
    """The size of the whole split on disk when `scale` takes a subset of it (the subset's `index` holds its
    positions in that split); None when the scale takes it all or generates its data."""
    source = scale.source(dataset)
    per_class = source.train_per_class if split == "train" else source.test_per_class
    if per_class is None or source.dataset == "synthetic":
        return None
    return describe_on_disk(source.dataset, split, data_root)[1].count


def describe(data: ImageData) -> str:
    """One line naming the data: source, split, size and image size (as records keep it)."""
    return f"{data.source}, {data.split} {len(data)} images, {data.image_size} px"
