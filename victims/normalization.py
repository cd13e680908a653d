"""Per-data-set normalisation statistics (mean, std), on images scaled to [0, 1]."""
from __future__ import annotations

from victims.registry import UnknownNameError

Stats = tuple[tuple[float, float, float], tuple[float, float, float]]

_IMAGENET: Stats = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))

NORMALIZATION: dict[str, Stats] = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "cifar100": ((0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761)),
    "stl10": _IMAGENET,
    "imagenet100": _IMAGENET,
    "imagenette": _IMAGENET,
    "synthetic": ((0.5, 0.5, 0.5), (0.25, 0.25, 0.25)),
    "raw": ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),  # no normalisation: the network sees [0, 1] pixels
}


def normalization_for(dataset: str) -> Stats:
    """Return ``(mean, std)`` for ``dataset``; raises `UnknownNameError` listing the known names."""
    try:
        return NORMALIZATION[dataset]
    except KeyError:
        raise UnknownNameError("dataset", dataset, sorted(NORMALIZATION)) from None
