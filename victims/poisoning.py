"""Applying an 8-bit perturbation to uint8 images (what a released poison does to the data)."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Perturbation:
    """An integer perturbation in pixel units: per sample (N, 3, H, W), aligned with the images by
    position, or per class (C, 3, H, W), indexed by label. With `mask` (bool (N,), by position) only the
    images it marks are perturbed (partial poisoning); the others stay clean."""

    delta: torch.Tensor  # int8 or int16
    per: str  # "sample" or "class"
    mask: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.per not in ("sample", "class"):
            raise ValueError(f"per must be 'sample' or 'class', not {self.per!r}")
        if self.delta.is_floating_point():
            raise TypeError("a perturbation is integer pixel units; quantise it first")

    def rows(self, positions: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        rows = self.delta[positions if self.per == "sample" else labels]
        if self.mask is None:
            return rows
        keep = self.mask.to(rows.device)[positions.to(rows.device)]
        return rows * keep.view(-1, 1, 1, 1).to(rows.dtype)


def balanced_mask(labels: torch.Tensor, ratio: float, seed: int) -> torch.Tensor:
    """A seeded class-balanced choice of round(ratio * n_c) samples of each class c (bool, by position)."""
    mask = torch.zeros(len(labels), dtype=torch.bool)
    generator = torch.Generator().manual_seed(seed)
    for c in torch.unique(labels).tolist():
        members = torch.nonzero(labels == c).flatten()
        mask[members[torch.randperm(len(members), generator=generator)[:round(ratio * len(members))]]] = True
    return mask


def apply_delta(images: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """uint8 images + integer delta, clamped to 0..255, as uint8 (add first, then clamp)."""
    return (images.to(torch.int16) + delta.to(device=images.device, dtype=torch.int16)).clamp_(0, 255).to(torch.uint8)
