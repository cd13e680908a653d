"""The specs that name every experiment: what poison (AttackSpec, from attacks/), which victim, which
evaluation.

A spec's key is the sha256 of its canonical JSON; jobs, poisons and records are named by it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from attacks.spec import AttackSpec, canonical_key
from defenses import DefenseSpec, defense_params
from victims.algorithms import ALGORITHMS
from victims.architectures import ARCHITECTURES
from victims.registry import UnknownNameError

from .data import DATASETS

SCALES = ["smoke", "mini", "paper"]  # grows with benchmark.scales.register_scale (argparse choices see it)
CONTROL = "untrained"  # the victim "algorithm" of the control row: random weights, probed the same way


def _check_scale(scale: str) -> None:
    if scale not in SCALES:
        raise UnknownNameError("scale", scale, list(SCALES))


def check_dataset(name: str) -> None:
    if name not in DATASETS:
        raise UnknownNameError("data set", name, list(DATASETS))


@dataclass(frozen=True)
class VictimSpec:
    """A victim run: its algorithm (or the `untrained` control) and architecture, trained on `dataset`
    as poisoned by `poison` (on a `poison_ratio` share of it, a seeded class-balanced subset; the rest
    clean), with `defense` applied, the scale's settings and `seed`. The defaults (no defense, the whole set
    poisoned) are left out of the key, so records made before these fields keep theirs."""

    algorithm: str
    arch: str = "resnet18"
    dataset: str = "cifar10"
    poison: AttackSpec | None = None
    scale: str = "mini"
    seed: int = 1112
    defense: DefenseSpec | None = None
    poison_ratio: float = 1.0

    def __post_init__(self) -> None:
        if self.defense is not None:
            defense_params(self.defense, self.scale)  # unknown, or a parameter out of range: raises
            if self.algorithm == CONTROL and not self.defense.is_none:
                raise ValueError("the untrained control is not trained: it has nothing to defend")
        if isinstance(self.poison_ratio, bool) or not isinstance(self.poison_ratio, (int, float)) or \
                not 0 < self.poison_ratio <= 1:
            raise ValueError(f"poison_ratio must be in (0, 1], not {self.poison_ratio!r}")
        if self.poison_ratio != 1 and (self.poison is None or self.poison.is_clean):
            raise ValueError("poison_ratio is the poisoned share of the training set: it needs a poison")
        _check_scale(self.scale)
        check_dataset(self.dataset)
        if self.algorithm != CONTROL:
            ALGORITHMS.get(self.algorithm)
        ARCHITECTURES.get(self.arch)
        if self.poison is not None:
            _check_scale(self.poison.scale)
            check_dataset(self.poison.dataset)
        if self.poison is not None and self.poison.dataset != self.dataset:
            raise ValueError(f"the poison is made for {self.poison.dataset}, the victim trains on {self.dataset}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["poison"] = None if self.poison is None or self.poison.is_clean else self.poison.to_dict()
        if self.defense is None or self.defense.is_none:
            del d["defense"]
        if self.poison_ratio == 1:
            del d["poison_ratio"]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "VictimSpec":
        """The spec a record's `victim` holds (its poison and defense as specs)."""
        d = dict(d)
        d["poison"] = AttackSpec.from_dict(d["poison"]) if d.get("poison") else None
        d["defense"] = DefenseSpec.from_dict(d["defense"]) if d.get("defense") else None
        return cls(**d)

    def clean(self) -> "VictimSpec":
        """The same victim (its defense included) on clean data: the reference of its damage."""
        return replace(self, poison=None, poison_ratio=1.0)

    def control(self) -> "VictimSpec":
        """The untrained control of this victim: same architecture, data set, scale and seed, random weights."""
        return replace(self, algorithm=CONTROL, poison=None, defense=None, poison_ratio=1.0)

    @property
    def defense_name(self) -> str:
        return "none" if self.defense is None else self.defense.name

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
