"""A generated data set with real class structure, for smoke runs and tests (no files, no download)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .imagedata import ImageData


def make_synthetic(split: str = "train", *, num_classes: int = 10, per_class: int | None = None,
                   image_size: int = 32, seed: int = 0) -> ImageData:
    """Each class is a blocky random luminance pattern in a colour; each image blends its class template
    with its own multi-scale colour texture, then is randomly shifted. Classes are linearly separable
    well above chance, and every image has structure at all scales that survives crops and colour
    jitter, so contrastive learning has something to learn.
    """
    per_class = per_class or (64 if split == "train" else 16)
    g = torch.Generator().manual_seed(seed)  # class templates are shared by both splits
    templates = _blocky(torch.rand(num_classes, 1, 8, 8, generator=g), image_size) \
        * (0.5 + 0.5 * torch.rand(num_classes, 3, 1, 1, generator=g))
    g = torch.Generator().manual_seed(seed * 7919 + (1 if split == "train" else 2))
    labels = torch.arange(num_classes).repeat_interleave(per_class)
    n = len(labels)
    own = _octaves(n, image_size, g)
    x = 0.5 * templates[labels] + 0.5 * own
    shifts = torch.randint(-image_size // 8, image_size // 8 + 1, (n, 2), generator=g)
    x = torch.stack([torch.roll(img, (int(dy), int(dx)), dims=(1, 2)) for img, (dy, dx) in zip(x, shifts)])
    images = (x.clamp(0, 1) * 255).round().to(torch.uint8)
    classes = [f"class{c}" for c in range(num_classes)]
    return ImageData("synthetic", split, images, labels, classes, "synthetic (generated)", "generated")


def _octaves(n: int, size: int, g: torch.Generator) -> torch.Tensor:
    """Colour noise summed over scales (coarse to fine, halving amplitude): image-like texture in [0, 1]."""
    x = torch.zeros(n, 3, size, size)
    for level, side in enumerate((2, 4, 8, 16, 32)):
        coarse = torch.rand(n, 3, min(side, size), min(side, size), generator=g) - 0.5
        x += 0.5 ** level * F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    return (x / 1.2 + 0.5).clamp(0, 1)


def _blocky(coarse: torch.Tensor, size: int) -> torch.Tensor:
    return F.interpolate((coarse > 0.5).float(), size=(size, size), mode="nearest")
