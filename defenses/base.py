"""The defense interface: what a careful victim does, on tensors handed to it (never on files).

A defense acts either on the data (`acts_on = "data"`: the released, possibly poisoned, uint8 training images
are transformed once before training, e.g. JPEG, grayscale, matrix completion) or inside training
(`acts_on = "training"`: it changes the views each step trains on, e.g. adversarial training).
"""
from __future__ import annotations

from abc import ABC
from typing import Any, ClassVar

import torch

from victims.train import ViewHook

from .spec import DefenseSpec


class DefenseParamError(ValueError):
    """Unknown or out-of-range defense parameters; the message names the valid ones or the range."""


class Defense(ABC):
    """A defense. Subclasses set `defaults` (parameter -> value), optionally `scale_defaults` (scale -> the
    parameters that differ there), `acts_on`, `source` (the paper it follows) and implement `check` and
    `transform` (data) or `view_hook` (training)."""

    name: ClassVar[str] = ""
    acts_on: ClassVar[str] = "data"  # "data" or "training"
    source: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}
    scale_defaults: ClassVar[dict[str, dict[str, Any]]] = {}
    cost: ClassVar[str] = ""  # what it costs, in words (docs/defenses.md)

    def params(self, spec: DefenseSpec, scale: str = "paper") -> dict[str, Any]:
        """The scale's defaults with `spec.params` over them; unknown names or values out of range raise
        DefenseParamError."""
        defaults = {**self.defaults, **self.scale_defaults.get(scale, {})}
        unknown = sorted(set(spec.params) - set(defaults))
        if unknown:
            raise DefenseParamError(f"unknown parameter(s) {unknown} for defense {spec.name!r}; "
                                    f"valid parameters: {sorted(defaults) or '(none)'}")
        p = {**defaults, **spec.params}
        self.check(p)
        return p

    def check(self, p: dict[str, Any]) -> None:
        """Raise DefenseParamError for a value out of range."""

    def cost_factor(self, p: dict[str, Any]) -> float:
        """The victim's training cost with this defense, relative to without (for the plan's estimate)."""
        return 1.0

    def transform(self, images: torch.Tensor, p: dict[str, Any], *, seed: int = 0) -> torch.Tensor:
        """uint8 (N, 3, H, W) -> uint8 (N, 3, H, W): the images the victim trains on (data defenses)."""
        raise NotImplementedError(f"{self.name} acts on {self.acts_on}, not on the data")

    def view_hook(self, p: dict[str, Any], *, seed: int = 0, dataset: str = "cifar10") -> ViewHook:
        """The hook that changes each training step's views (training defenses)."""
        raise NotImplementedError(f"{self.name} acts on {self.acts_on}, not inside training")


def in_range(p: dict[str, Any], name: str, low: float, high: float, *, low_open: bool = False,
             integer: bool = False) -> None:
    """p[name] within [low, high] (or (low, high] with low_open), an integer where `integer`."""
    value = p[name]
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and \
        (value > low if low_open else value >= low) and value <= high and (not integer or float(value).is_integer())
    if not ok:
        bracket = "(" if low_open else "["
        kind = "an integer" if integer else "a number"
        raise DefenseParamError(f"{name} must be {kind} in {bracket}{low}, {high}], not {value!r}")
