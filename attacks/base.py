"""The attack interface: a poison generator working on tensors handed to it (never on files)."""
from __future__ import annotations

import contextlib
import os
from abc import ABC, abstractmethod
from typing import Any, ClassVar, Iterator

import torch
from torch import nn

from .poison import Poison
from .spec import AttackSpec


class AttackParamError(ValueError):
    """Unknown or invalid attack parameters; the message lists the valid ones."""


def params(spec: AttackSpec, defaults: dict[str, Any]) -> dict[str, Any]:
    """`spec.params` merged over `defaults`; unknown names raise AttackParamError listing the valid ones."""
    unknown = sorted(set(spec.params) - set(defaults))
    if unknown:
        raise AttackParamError(f"unknown parameter(s) {unknown} for attack {spec.attack!r}; "
                               f"valid parameters: {sorted(defaults) or '(none)'}")
    return {**defaults, **spec.params}


@contextlib.contextmanager
def frozen(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode (batch-norm statistics frozen) and no parameter gradients inside; restored on exit."""
    was_training = model.training
    flags = [(p, p.requires_grad) for p in model.parameters()]
    model.eval()
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        model.train(was_training)


def rng_devices(device: torch.device) -> list[torch.device]:
    """The devices whose RNG `torch.random.fork_rng` must save: the CUDA device in use, if any."""
    return [device] if device.type == "cuda" else []


def check_inputs(images: torch.Tensor, labels: torch.Tensor, index: torch.Tensor) -> None:
    """images uint8 (N, 3, H, W), labels int64 (N,), index int64 sample ids (N,)."""
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be uint8 (N, 3, H, W), got {images.dtype} {tuple(images.shape)}")
    for name, t in (("labels", labels), ("index", index)):
        if t.dtype != torch.int64 or t.shape != (images.shape[0],):
            raise ValueError(f"{name} must be int64 of shape ({images.shape[0]},), got {t.dtype} {tuple(t.shape)}")


class Attack(ABC):
    """A poison generator. Subclasses set `per` ("sample" or "class") and `defaults` (parameter name ->
    default value) and implement `generate`; `register_attack(name)` sets `name`."""

    name: ClassVar[str] = ""
    per: ClassVar[str] = "sample"
    # the attacker's model: "contrastive" (made with a contrastive algorithm: the victim's own, or the one a
    # grid row names as `attack@algorithm`), "supervised" (a supervised surrogate) or None (no model)
    surrogate: ClassVar[str | None] = None
    gpu_hours: ClassVar[float] = 5.0  # rough cost of one poison at the paper scale on CIFAR-10 (A100 hours)
    # grids that get a row for this attack beyond the paper's own rows (a new attack: the main table)
    extra_rows_in: ClassVar[tuple[str, ...]] = ("effectiveness",)
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, inputs: dict[str, Poison] | None = None):
        self.inputs: dict[str, Poison] = dict(inputs or {})  # the poisons of `requires`, by spec key
        self.report: dict = {}  # what `generate` measured (history, resumed_from_epoch), kept beside the poison

    def params(self, spec: AttackSpec) -> dict[str, Any]:
        return params(spec, self.defaults)

    @classmethod
    def spec_for(cls, dataset: str, algorithm: str, arch: str, scale: str) -> AttackSpec:
        """The spec of this attack's poison of `dataset` made with `algorithm` (contrastive surrogates) on
        `arch`, as the grids name it."""
        if cls.surrogate == "contrastive":
            return AttackSpec(cls.name, dataset, algorithm, arch, scale=scale)
        if cls.surrogate == "supervised":
            return AttackSpec(cls.name, dataset, "supervised", arch, scale=scale)
        return AttackSpec(cls.name, dataset, scale=scale)

    def surrogate_settings(self, spec: AttackSpec) -> dict[str, Any]:
        """The settings of the model the attack trains (network heads, loss, optimiser), kept in the poison's
        record so that a poison made with other ones is made again; none by default."""
        return {}

    def requires(self, spec: AttackSpec) -> list[AttackSpec]:
        """Poisons this one starts from (made first and handed over in `inputs`); none by default."""
        return []

    @abstractmethod
    def generate(self, spec: AttackSpec, images: torch.Tensor, labels: torch.Tensor, index: torch.Tensor, *,
                 device: torch.device | str = "cpu", workdir: str | os.PathLike | None = None,
                 progress: bool = True) -> Poison:
        """Make the poison of `spec` for uint8 `images` (N, 3, H, W) with int64 `labels` and sample ids
        `index`; `workdir` (may be None) is where the attack may keep checkpoints to resume from."""
