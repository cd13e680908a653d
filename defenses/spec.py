"""DefenseSpec: what a victim does to its data or its training (part of a victim's key, omitted when `none`)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class DefenseSpec:
    """A defense by registered name and the parameters given over its scale's defaults."""

    name: str = "none"
    params: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "DefenseSpec":
        return cls(**d)

    @property
    def is_none(self) -> bool:
        return self.name == "none"

    @property
    def label(self) -> str:
        """`jpeg` or `jpeg(quality=30)`: the name a table shows."""
        if not self.params:
            return self.name
        return f"{self.name}({','.join(f'{k}={v}' for k, v in sorted(self.params.items()))})"
