"""A generated data set with real class structure, for smoke runs and tests (no files, no download)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .imagedata import ImageData


def make_synthetic(split: str = "train", *, num_classes: int = 10, per_class: int | None = None,
                   image_size: int = 32, seed: int = 0) -> ImageData:
    """Each class is a smooth random colour template; each image blends its class template with a
    sample-specific smooth pattern and pixel noise, then is randomly shifted. A linear classifier on
    the pixels separates the classes well above chance, and crops/colour jitter do not erase them.
    """
    per_class = per_class or (64 if split == "train" else 16)
    g = torch.Generator().manual_seed(seed)  # class templates are shared by both splits
    templates = _smooth(torch.rand(num_classes, 3, 4, 4, generator=g), image_size)
    g = torch.Generator().manual_seed(seed * 7919 + (1 if split == "train" else 2))
    labels = torch.arange(num_classes).repeat_interleave(per_class)
    n = len(labels)
    own = _smooth(torch.rand(n, 3, 4, 4, generator=g), image_size)
    x = 0.6 * templates[labels] + 0.4 * own + 0.05 * torch.randn(n, 3, image_size, image_size, generator=g)
    shifts = torch.randint(-image_size // 8, image_size // 8 + 1, (n, 2), generator=g)
    x = torch.stack([torch.roll(img, (int(dy), int(dx)), dims=(1, 2)) for img, (dy, dx) in zip(x, shifts)])
    images = (x.clamp(0, 1) * 255).round().to(torch.uint8)
    classes = [f"class{c}" for c in range(num_classes)]
    return ImageData("synthetic", split, images, labels, classes, "synthetic (generated)", "generated")


def _smooth(coarse: torch.Tensor, size: int) -> torch.Tensor:
    return F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False).clamp(0, 1)
