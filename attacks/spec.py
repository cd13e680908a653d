"""AttackSpec: what names a poison (its hash is the poison's name)."""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any


def canonical_key(obj: Any) -> str:
    """sha256 of canonical JSON (sorted keys, no spaces)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()


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

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "AttackSpec":
        return cls(**d)

    @property
    def key(self) -> str:
        return canonical_key(self.to_dict())

    @property
    def is_clean(self) -> bool:
        return self.attack == "none"
