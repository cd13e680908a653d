"""Image-squeezing defenses: each transforms the released uint8 training images once, before training.

- `jpeg` and `grayscale`: Liu et al., "Image Shortcut Squeezing: Countering Perturbative Availability
  Poisons with Compression", ICML 2023 (ISS; github liuzrcc/ImageShortcutSqueezing): JPEG at quality 10,
  and grayscale with three channels, both through PIL as ISS does (JPEG by Pillow itself; grayscale by
  PIL's integer ITU-R 601-2 formula, here in torch and equal to Pillow's `convert("L")`).
- `bit-depth` and `median`: feature squeezing (Xu, Evans & Qi, NDSS 2018): x -> round(x (2^b - 1)) / (2^b - 1);
  a k x k median filter.
- `blur`: a Gaussian filter (kernel, sigma), as in the availability-poison defense literature (e.g. ISS's
  baselines).
"""
from __future__ import annotations

import io
from typing import Any

import kornia
import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image

from .base import Defense, DefenseParamError, in_range
from .registry import register_defense


def odd_kernel(p: dict[str, Any]) -> None:
    if int(p["kernel"]) % 2 == 0:
        raise DefenseParamError(f"kernel must be odd, not {p['kernel']}")


@register_defense("none")
class NoDefense(Defense):
    """No defense: the victim trains on the data as released."""

    source = "-"
    cost = "nothing"

    def transform(self, images: torch.Tensor, p: dict[str, Any], *, seed: int = 0) -> torch.Tensor:
        return images


@register_defense("jpeg")
class Jpeg(Defense):
    """JPEG compression at `quality` (ISS: 10), by Pillow (4:2:0 chroma subsampling, its default)."""

    source = "Liu et al., ICML 2023 (ISS), JPEG-10"
    defaults = {"quality": 10}
    cost = "a JPEG round trip per image (seconds for CIFAR-10 on one core)"

    def check(self, p: dict[str, Any]) -> None:
        in_range(p, "quality", 1, 100, integer=True)

    def transform(self, images: torch.Tensor, p: dict[str, Any], *, seed: int = 0) -> torch.Tensor:
        out = torch.empty_like(images)
        for i, image in enumerate(images.permute(0, 2, 3, 1).numpy()):
            buffer = io.BytesIO()
            Image.fromarray(image).save(buffer, format="JPEG", quality=int(p["quality"]))
            buffer.seek(0)
            out[i] = torch.from_numpy(np.asarray(Image.open(buffer).convert("RGB")).copy()).permute(2, 0, 1)
        return out


def pil_grayscale(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 3, H, W) -> uint8 (N, H, W) as Pillow's convert("L"): (19595 R + 38470 G + 7471 B + 2^15) >> 16."""
    x = images.to(torch.int64)
    return ((19595 * x[:, 0] + 38470 * x[:, 1] + 7471 * x[:, 2] + 0x8000) >> 16).to(torch.uint8)


@register_defense("grayscale")
class Grayscale(Defense):
    """Grayscale, repeated to three channels (ISS: torchvision's Grayscale(3) on PIL images)."""

    source = "Liu et al., ICML 2023 (ISS), grayscale"
    cost = "negligible"

    def transform(self, images: torch.Tensor, p: dict[str, Any], *, seed: int = 0) -> torch.Tensor:
        return pil_grayscale(images)[:, None].expand(-1, 3, -1, -1).contiguous()


@register_defense("blur")
class Blur(Defense):
    """A Gaussian blur: odd `kernel` size, `sigma` in pixels (torchvision's gaussian_blur, reflect padding)."""

    source = "Gaussian smoothing, a baseline of ISS (Liu et al., ICML 2023)"
    defaults = {"kernel": 3, "sigma": 0.5}
    cost = "negligible"

    def check(self, p: dict[str, Any]) -> None:
        in_range(p, "kernel", 1, 31, integer=True)
        odd_kernel(p)
        in_range(p, "sigma", 0, 10, low_open=True)

    def transform(self, images: torch.Tensor, p: dict[str, Any], *, seed: int = 0) -> torch.Tensor:
        k = int(p["kernel"])
        return TF.gaussian_blur(images, [k, k], [float(p["sigma"])] * 2)


@register_defense("bit-depth")
class BitDepth(Defense):
    """Colour bit-depth reduction to `bits` per channel (feature squeezing)."""

    source = "Xu, Evans & Qi, NDSS 2018 (feature squeezing)"
    defaults = {"bits": 4}
    cost = "negligible"

    def check(self, p: dict[str, Any]) -> None:
        in_range(p, "bits", 1, 8, integer=True)

    def transform(self, images: torch.Tensor, p: dict[str, Any], *, seed: int = 0) -> torch.Tensor:
        levels = 2 ** int(p["bits"]) - 1
        x = images.to(torch.float64) / 255
        return (torch.round(x * levels) / levels * 255).round().to(torch.uint8)


@register_defense("median")
class Median(Defense):
    """A `kernel` x `kernel` median filter per channel (feature squeezing; kornia, reflect padding)."""

    source = "Xu, Evans & Qi, NDSS 2018 (feature squeezing)"
    defaults = {"kernel": 3}
    cost = "negligible"

    def check(self, p: dict[str, Any]) -> None:
        in_range(p, "kernel", 1, 15, integer=True)
        odd_kernel(p)

    def transform(self, images: torch.Tensor, p: dict[str, Any], *, seed: int = 0) -> torch.Tensor:
        k = int(p["kernel"])
        out = torch.empty_like(images)
        for start in range(0, len(images), 1024):
            chunk = images[start:start + 1024].to(torch.float32)
            out[start:start + 1024] = kornia.filters.median_blur(chunk, (k, k)).round().to(torch.uint8)
        return out
