"""The in-memory form of a data set split: uint8 images, labels, class names, provenance."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class ImageData:
    """One split of a data set as uint8 tensors (possibly memory-mapped from the cache).

    `index` holds each sample's position in the full split, so that per-sample poisons stay aligned
    after subsetting or shuffling.
    """

    name: str
    split: str
    images: torch.Tensor  # uint8 (N, 3, H, W)
    labels: torch.Tensor  # int64 (N,)
    classes: list[str]
    source: str  # human-readable variant, e.g. "CIFAR-10 (JPEG folder)"
    location: str = ""
    index: torch.Tensor = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4 or self.images.shape[1] != 3:
            raise ValueError(f"images must be uint8 (N, 3, H, W), got {self.images.dtype} {tuple(self.images.shape)}")
        if self.labels.shape != (self.images.shape[0],):
            raise ValueError(f"{self.images.shape[0]} images but labels of shape {tuple(self.labels.shape)}")
        if self.index is None:
            self.index = torch.arange(len(self.labels))

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_size(self) -> int:
        return int(self.images.shape[-1])

    def subset(self, indices: torch.Tensor) -> "ImageData":
        """The samples at `indices` (positions in this object), copied into memory."""
        indices = torch.as_tensor(indices, dtype=torch.long)
        return ImageData(self.name, self.split, self.images[indices].clone(), self.labels[indices].clone(),
                         self.classes, self.source, self.location, self.index[indices].clone())

    def class_counts(self) -> torch.Tensor:
        return torch.bincount(self.labels, minlength=self.num_classes)


def balanced_subset(data: ImageData, per_class: int, seed: int = 0) -> ImageData:
    """A class-balanced subset with `per_class` samples of every class, drawn with `seed`, in split order."""
    counts = data.class_counts()
    short = [(data.classes[c], int(n)) for c, n in enumerate(counts) if n < per_class]
    if short:
        raise ValueError(f"{data.name}/{data.split}: cannot take {per_class} per class; "
                         f"too few samples in {short[:5]}{' ...' if len(short) > 5 else ''}")
    generator = torch.Generator().manual_seed(seed)
    chosen = []
    for c in range(data.num_classes):
        members = torch.nonzero(data.labels == c).flatten()
        chosen.append(members[torch.randperm(len(members), generator=generator)[:per_class]])
    return data.subset(torch.cat(chosen).sort().values)


def first_classes(data: ImageData, classes: int) -> ImageData:
    """Only the samples of the first `classes` classes (labels 0 .. classes - 1), in split order."""
    if not 1 <= classes <= data.num_classes:
        raise ValueError(f"{data.name}/{data.split}: cannot keep the first {classes} of {data.num_classes} classes")
    if classes == data.num_classes:
        return data
    kept = data.subset(torch.nonzero(data.labels < classes).flatten())
    kept.classes = data.classes[:classes]
    return kept
