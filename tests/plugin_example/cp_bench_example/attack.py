"""The attack 'stripes': +eps on even pixel rows, -eps on odd ones, the same for every image."""
from __future__ import annotations

import torch

from attacks import Attack, Poison


class Stripes(Attack):
    """Horizontal stripes of amplitude eps, one pattern per sample (all equal)."""

    per = "sample"
    defaults = {"eps": 8 / 255}
    surrogate = None  # no model is trained to make it
    gpu_hours = 0.01
    extra_rows_in = ("effectiveness",)

    def generate(self, spec, images, labels, index, *, device="cpu", workdir=None, progress=True) -> Poison:
        p = self.params(spec)
        step = round(p["eps"] * 255)
        rows = torch.where(torch.arange(images.shape[2]) % 2 == 0, step, -step).to(torch.float32)
        delta = rows.view(1, 1, -1, 1).expand(images.shape).clone()
        return Poison.create(delta, self.per, p["eps"], spec, index)
