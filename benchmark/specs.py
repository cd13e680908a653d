"""The specs that name every experiment: what poison, which victim, which evaluation.

A spec's key is the sha256 of its canonical JSON; jobs, poisons and records are named by it.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from victims.algorithms import ALGORITHMS
from victims.architectures import ARCHITECTURES
from victims.registry import UnknownNameError

from .data import DATASETS

SCALES = ("smoke", "mini", "paper")
CONTROL = "untrained"  # the victim "algorithm" of the control row: random weights, probed the same way


def canonical_key(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()


def _check_scale(scale: str) -> None:
    if scale not in SCALES:
        raise UnknownNameError("scale", scale, list(SCALES))


def check_dataset(name: str) -> None:
    if name not in DATASETS:
        raise UnknownNameError("data set", name, list(DATASETS))


@dataclass(frozen=True)
class AttackSpec:
    """A poison: attack name, its parameters, the attacker's algorithm and architecture where it has
    them, the data set it poisons, the seed and the scale. `none` means clean data."""

    attack: str = "none"
    dataset: str = "cifar10"
    algorithm: str | None = None
    arch: str | None = None
    params: dict = field(default_factory=dict)
    seed: int = 1112
    scale: str = "mini"

    def __post_init__(self) -> None:
        _check_scale(self.scale)
        check_dataset(self.dataset)

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def key(self) -> str:
        return canonical_key(self.to_dict())

    @property
    def is_clean(self) -> bool:
        return self.attack == "none"


@dataclass(frozen=True)
class VictimSpec:
    """A victim run: its algorithm (or the `untrained` control) and architecture, trained on `dataset`
    as poisoned by `poison`, with the scale's settings and `seed`."""

    algorithm: str
    arch: str = "resnet18"
    dataset: str = "cifar10"
    poison: AttackSpec | None = None
    scale: str = "mini"
    seed: int = 1112

    def __post_init__(self) -> None:
        _check_scale(self.scale)
        check_dataset(self.dataset)
        if self.algorithm != CONTROL:
            ALGORITHMS.get(self.algorithm)
        ARCHITECTURES.get(self.arch)
        if self.poison is not None and self.poison.dataset != self.dataset:
            raise ValueError(f"the poison is made for {self.poison.dataset}, the victim trains on {self.dataset}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["poison"] = None if self.poison is None or self.poison.is_clean else self.poison.to_dict()
        return d

    @property
    def key(self) -> str:
        return canonical_key(self.to_dict())

    @property
    def attack(self) -> str:
        return "none" if self.poison is None else self.poison.attack


@dataclass(frozen=True)
class EvalSpec:
    """The data sets the frozen encoder is probed on (the training data set first); kNN on each."""

    datasets: tuple[str, ...] = ("cifar10",)

    def __post_init__(self) -> None:
        for name in self.datasets:
            check_dataset(name)
