"""A perturbation being optimised, kept as small integers rather than float32.

Signed-gradient steps move every entry by a fixed step, so the working delta lives on a grid of `q` units
per pixel: int8 whenever the bound and the step fit it exactly (eps 8/255, step 0.8/255: 15 units per pixel,
bound 120 units, step 12 units -- a quarter of a float32 delta, exact), int16 otherwise (half, and a step
rounded to 1/4096 pixel).
"""
from __future__ import annotations

import torch


def _grid(eps_pixels: int, step_pixels: float) -> tuple[torch.dtype, int]:
    """(dtype, units per pixel) for a bound of `eps_pixels` and steps of `step_pixels`."""
    q8 = 127 // max(eps_pixels, 1)
    if q8 >= 1 and abs(step_pixels * q8 - round(step_pixels * q8)) < 1e-6 and round(step_pixels * q8) >= 1:
        return torch.int8, q8
    return torch.int16, 32767 // max(eps_pixels, 1)


class DeltaStore:
    """Integer delta rows (rows, 3, H, W) bounded by `eps_pixels`, updated by signed steps of `step_pixels`."""

    def __init__(self, rows: int, shape: tuple[int, ...], eps_pixels: int, step_pixels: float,
                 device: torch.device | str = "cpu"):
        self.dtype, self.q = _grid(eps_pixels, step_pixels)
        self.limit = eps_pixels * self.q
        self.step_units = max(1, round(step_pixels * self.q))
        self.units = torch.zeros((rows, *shape), dtype=self.dtype, device=device)

    @property
    def nbytes(self) -> int:
        return self.units.numel() * self.units.element_size()

    def fill_uniform(self, generator: torch.Generator) -> None:
        """Entries uniform in [-eps, eps] (drawn on the CPU in chunks, so every device gets the same)."""
        for s in range(0, len(self.units), 1024):
            part = self.units[s:s + 1024]
            u = torch.rand(part.shape, generator=generator).mul_(2).sub_(1).mul_(self.limit).round_()
            part.copy_(u.to(self.dtype))

    def fill_pixels(self, pixels: torch.Tensor) -> None:
        """Set from an integer delta in pixel units (e.g. a released poison), rows aligned."""
        self.units.copy_((pixels.to(torch.int32) * self.q).clamp_(-self.limit, self.limit).to(self.dtype))

    def pixels(self, rows: torch.Tensor | None = None) -> torch.Tensor:
        """float32 delta in pixel units (all rows, or `rows`)."""
        units = self.units if rows is None else self.units[rows]
        return units.float() / self.q

    def step(self, rows: torch.Tensor | None, direction: torch.Tensor) -> None:
        """units[rows] -= step * sign(direction), then clamp to the bound (rows distinct)."""
        sel = slice(None) if rows is None else rows
        new = self.units[sel].to(torch.int32) - self.step_units * torch.sign(direction).to(torch.int32)
        self.units[sel] = new.clamp_(-self.limit, self.limit).to(self.dtype)

    def release(self) -> torch.Tensor:
        """The delta in float pixel units (Poison.create rounds it to int8)."""
        return self.pixels().cpu()
