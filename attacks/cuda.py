"""CUDA (Sadasivan, Soltanolkotabi & Feizi, "CUDA: Convolution-based Unlearnable Datasets", CVPR 2023): every
image convolved with a random filter of its class; no model, no training.

Follows the authors' `get_filter_unlearnable` (github vinusankars/Convolution-based-Unlearnability @ ff58b1c,
final_filter_unlearnable.py:78-144; docs/sources/cuda.md): per class, in class order, a k x k filter of
U[0, blur_parameter) entries drawn by numpy's legacy RNG seeded with the seed, one entry at a random position
(row drawn first) set to `center_parameter`, the same filter on R, G and B (a depthwise convolution, zero
padding k // 2, no bias); each image in [0, 1] convolved with its class's filter, divided by its own maximum,
times 255, clipped and truncated to uint8. The change is not norm-bounded: the poison's bound is 255 pixels.
"""
from __future__ import annotations

import os

import numpy as np
import torch
import torch.nn.functional as F

from .base import Attack, AttackParamError, check_inputs
from .poison import Poison
from .registry import register_attack
from .spec import AttackSpec

CHUNK = 2048  # images convolved at a time


def class_filters(num_classes: int, seed: int, blur_parameter: float = 0.3, center_parameter: float = 1.0,
                  kernel_size: int = 3) -> torch.Tensor:
    """(num_classes, k, k) float64 filters, drawn as the authors' code draws them (final_filter_unlearnable.py:
    80-96): per class uniform(0, pb) of shape (3, 1, k, k), of which channel 0 is kept, then its entry at
    (randint(k), randint(k)) set to the centre parameter."""
    rng = np.random.RandomState(seed)  # the legacy global RNG of np.random.seed(seed)
    out = np.empty((num_classes, kernel_size, kernel_size))
    for c in range(num_classes):
        w = rng.uniform(low=0, high=blur_parameter, size=(3, 1, kernel_size, kernel_size))
        w[0, 0, rng.randint(kernel_size), rng.randint(kernel_size)] = center_parameter
        out[c] = w[0, 0]
    return torch.from_numpy(out)


def convolve(images: torch.Tensor, filters: torch.Tensor, *, grayscale: bool = False) -> torch.Tensor:
    """uint8 images (N, 3, H, W), each with its own (k, k) filter (N, k, k): the authors' per-image transform
    (final_filter_unlearnable.py:118-142) in float32, as uint8."""
    x = images.to(torch.float32) / 255
    n, c, h, w = x.shape
    k = filters.shape[-1]
    # one depthwise convolution for the whole chunk: the images' channels side by side as groups
    weight = filters.to(torch.float32).repeat_interleave(c, dim=0).unsqueeze(1)  # (N*3, 1, k, k)
    y = F.conv2d(x.reshape(1, n * c, h, w), weight, padding=k // 2, groups=n * c).reshape(n, c, h, w)
    if grayscale:
        y = y.mean(1, keepdim=True).expand(n, c, h, w)
    peak = y.flatten(1).amax(1).clamp_min(torch.finfo(torch.float32).tiny).view(n, 1, 1, 1)  # an all-black image
    return (y / peak * 255).clamp(0, 255).to(torch.uint8)  # the authors' .astype(np.uint8) truncates


@register_attack("cuda")
class CUDA(Attack):
    """Class-wise random blurs (sample-wise storage: each image's change differs). `blur_parameter` 0.3,
    `center_parameter` 1.0 and `kernel_size` 3 are the authors' defaults for CIFAR-10 and CIFAR-100
    (final_filter_unlearnable.py:65-70); their seed default is 0, ours the spec's seed."""

    per = "sample"
    gpu_hours = 0.01
    extra_rows_in = ("beyond", "leaderboard")
    defaults = {"blur_parameter": 0.3, "center_parameter": 1.0, "kernel_size": 3, "grayscale": False}

    def params(self, spec: AttackSpec) -> dict:
        p = super().params(spec)
        k = p["kernel_size"]
        if not isinstance(k, int) or isinstance(k, bool) or k < 1 or k % 2 == 0:
            raise AttackParamError(f"cuda: kernel_size must be an odd positive integer (the authors': 3), got {k!r}")
        if not 0 < float(p["blur_parameter"]) <= 10 or not 0 < float(p["center_parameter"]) <= 10:
            raise AttackParamError(f"cuda: blur_parameter and center_parameter must be in (0, 10] (the authors': "
                                   f"0.3 and 1.0), got {p['blur_parameter']!r} and {p['center_parameter']!r}")
        if not isinstance(p["grayscale"], bool):
            raise AttackParamError(f"cuda: grayscale must be true or false, got {p['grayscale']!r}")
        return p

    def generate(self, spec: AttackSpec, images: torch.Tensor, labels: torch.Tensor, index: torch.Tensor, *,
                 device: torch.device | str = "cpu", workdir: str | os.PathLike | None = None,
                 progress: bool = True) -> Poison:
        check_inputs(images, labels, index)
        p = self.params(spec)
        num_classes = int(labels.max()) + 1 if labels.numel() else 0
        filters = class_filters(num_classes, int(spec.seed), float(p["blur_parameter"]),
                                float(p["center_parameter"]), int(p["kernel_size"]))
        delta = torch.empty(images.shape, dtype=torch.int16)
        for s in range(0, len(images), CHUNK):
            part = images[s:s + CHUNK]
            released = convolve(part, filters[labels[s:s + CHUNK]], grayscale=p["grayscale"])
            delta[s:s + CHUNK] = released.to(torch.int16) - part.to(torch.int16)
        return Poison.create(delta, self.per, 1.0, spec, index)
