"""The `random` attack: per-sample noise uniform in [-eps, eps], quantised to int8 pixels."""
from __future__ import annotations

import os

import torch

from .base import Attack, AttackParamError, check_inputs
from .poison import Poison, eps_to_pixels
from .registry import register_attack
from .spec import AttackSpec

CHUNK = 4096  # samples drawn at a time, so the float noise never holds the whole data set


@register_attack("random")
class RandomNoise(Attack):
    """delta ~ U[-eps, eps] per sample (eps 8/255 by default), from a generator seeded with spec.seed."""

    per = "sample"
    gpu_hours = 0.01
    extra_rows_in = ()
    defaults = {"eps": 8 / 255}

    def generate(self, spec: AttackSpec, images: torch.Tensor, labels: torch.Tensor, index: torch.Tensor, *,
                 device: torch.device | str = "cpu", workdir: str | os.PathLike | None = None,
                 progress: bool = True) -> Poison:
        check_inputs(images, labels, index)
        eps = float(self.params(spec)["eps"])
        e = eps_to_pixels(eps)
        if not 0 <= e <= 127:
            raise AttackParamError(f"random: eps must be in [0, 127/255] (int8 pixels), got {eps}")
        gen = torch.Generator().manual_seed(int(spec.seed))  # on the CPU: the same poison on every device
        delta = torch.empty(images.shape, dtype=torch.int8)
        for s in range(0, len(images), CHUNK):
            n = min(CHUNK, len(images) - s)
            noise = torch.rand((n, *images.shape[1:]), generator=gen).mul_(2 * e).sub_(e)
            delta[s:s + n] = noise.round_().clamp_(-e, e).to(torch.int8)
        return Poison.create(delta, self.per, eps, spec, index)
