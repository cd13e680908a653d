"""Applying an 8-bit perturbation to uint8 images (what a released poison does to the data)."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Perturbation:
    """An integer perturbation in pixel units: per sample (N, 3, H, W), aligned with the images by
    position, or per class (C, 3, H, W), indexed by label."""

    delta: torch.Tensor  # int8 or int16
    per: str  # "sample" or "class"

    def __post_init__(self) -> None:
        if self.per not in ("sample", "class"):
            raise ValueError(f"per must be 'sample' or 'class', not {self.per!r}")
        if self.delta.is_floating_point():
            raise TypeError("a perturbation is integer pixel units; quantise it first")

    def rows(self, positions: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.delta[positions if self.per == "sample" else labels]


def apply_delta(images: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """uint8 images + integer delta, clamped to 0..255, as uint8 (add first, then clamp)."""
    return (images.to(torch.int16) + delta.to(device=images.device, dtype=torch.int16)).clamp_(0, 255).to(torch.uint8)
