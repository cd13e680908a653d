"""Matrix completion (the paper's countermeasure, "based on matrix completion"; procedure of ME-Net: Yang, Zhang,
Katabi & Xu, ICML 2019, github YyzHarry/ME-Net): drop pixel values at random and reconstruct each image as a
low-rank matrix, then train on the reconstructions.

As ME-Net's code does by default (`--me-type usvt --me-channel concat`): the image becomes one H x 3W matrix
[R | G | B] scaled to [-1, 1]; each entry is kept with probability `keep` (a Bernoulli mask, drawn per image
from the victim's seed); the masked matrix's SVD keeps its top round(`rank_fraction` * H) singular values
(ME-Net's `--svdprob`, 0.8: 25 of 32 for CIFAR) and is divided by the observed fraction; the result is
clipped to [-1, 1] and mapped back to 8 bits. `keep` defaults to 0.5, ME-Net's adversarial-training setting
and one of its released models' (its pure-training copies use 0.82 ... 1.0). The contrastive-poisoning
paper's own parameters were not reachable (docs/defenses.md says so): these are ME-Net's.
"""
from __future__ import annotations

from typing import Any

import torch

from .base import Defense, in_range
from .registry import register_defense


def usvt(images: torch.Tensor, keep: float, rank_fraction: float, generator: torch.Generator) -> torch.Tensor:
    """uint8 (N, 3, H, W) -> uint8: ME-Net's USVT reconstruction of each image from a `keep` mask."""
    n, c, h, w = images.shape
    x = images.to(torch.float64).mul(2 / 255).sub(1)
    matrix = x.permute(0, 2, 1, 3).reshape(n, h, c * w)  # [R | G | B] side by side
    mask = (torch.rand(matrix.shape, generator=generator, dtype=torch.float64) < keep).to(torch.float64)
    observed = mask.mean(dim=(1, 2), keepdim=True).clamp_min(1 / mask[0].numel())
    u, s, vh = torch.linalg.svd(matrix * mask, full_matrices=False)
    rank = max(1, round(rank_fraction * min(h, c * w)))
    low = (u[:, :, :rank] * s[:, None, :rank]) @ vh[:, :rank] / observed
    out = low.clamp(-1, 1).reshape(n, h, c, w).permute(0, 2, 1, 3)
    return out.add(1).mul(255 / 2).round().to(torch.uint8)


@register_defense("matrix-completion")
class MatrixCompletion(Defense):
    """Drop each pixel value with probability 1 - `keep`, reconstruct the image by low-rank estimation (USVT
    keeping `rank_fraction` of the singular values), train on the reconstructions."""

    source = ("He, Zha & Katabi, ICLR 2023 (its countermeasure); procedure and defaults of ME-Net (Yang et al., "
              "ICML 2019)")
    defaults = {"keep": 0.5, "rank_fraction": 0.8}
    cost = "one batched SVD per image (seconds for CIFAR-10)"

    def check(self, p: dict[str, Any]) -> None:
        in_range(p, "keep", 0, 1, low_open=True)
        in_range(p, "rank_fraction", 0, 1, low_open=True)

    def transform(self, images: torch.Tensor, p: dict[str, Any], *, seed: int = 0) -> torch.Tensor:
        generator = torch.Generator().manual_seed(seed)
        out = torch.empty_like(images)
        for start in range(0, len(images), 2048):
            chunk = slice(start, start + 2048)
            out[chunk] = usvt(images[chunk], float(p["keep"]), float(p["rank_fraction"]), generator)
        return out
