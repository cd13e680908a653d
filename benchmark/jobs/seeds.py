"""Repeated runs of a cell with other seeds, and the mean and spread of their numbers.

A cell's victim (and its poison) carry a seed; `bench run --seeds 1112 1113 1114` plans every selected cell once
per seed: the victim and the poison it trains on both take the seed (a CP-S poison's CP-C start too, as the
attack's spec derives it). The tables, the leaderboard and the claims then show, for every cell measured with
more than one seed, the mean over the seeds and their spread: the sample standard deviation (n - 1).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable, Iterable, Sequence

from attacks.external import is_external

from ..grids import Cell
from ..specs import VictimSpec

DEFAULT_SEED = VictimSpec.__dataclass_fields__["seed"].default  # the seed every grid cell is planned with


@dataclass(frozen=True)
class Measurement:
    """A cell's numbers, one per seed measured (in the order of `seeds`)."""

    values: tuple[float, ...] = ()
    seeds: tuple[int, ...] = ()

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float | None:
        return sum(self.values) / self.n if self.values else None

    @property
    def spread(self) -> float | None:
        """The sample standard deviation over the seeds; None below two seeds."""
        if self.n < 2:
            return None
        mean = self.mean
        return math.sqrt(sum((v - mean) ** 2 for v in self.values) / (self.n - 1))

    def by_seed(self) -> dict[int, float]:
        return dict(zip(self.seeds, self.values))


def mean_text(mean: float, spread: float | None, seeds: int, pm: str = "±") -> str:
    """'44.9', or '44.9 ± 0.6 (3 seeds)' for the mean of several seeds."""
    if seeds < 2 or spread is None:
        return f"{mean:.1f}"
    return f"{mean:.1f} {pm} {spread:.1f} ({seeds} seeds)"


def measured(values: dict[int, float | None]) -> Measurement:
    """The seeds that have a number, in seed order."""
    present = sorted((s, v) for s, v in values.items() if v is not None)
    return Measurement(tuple(v for _, v in present), tuple(s for s, _ in present))


def paired(a: Measurement, b: Measurement, combine: Callable[[float, float], float | None]) -> Measurement:
    """`combine(a, b)` for each seed measured on both sides (e.g. a poisoned victim and its clean one)."""
    x, y = a.by_seed(), b.by_seed()
    return measured({s: combine(x[s], y[s]) for s in x if s in y})


def reseed(victim: VictimSpec, seed: int) -> VictimSpec:
    """The victim run with `seed`, trained on its poison made with `seed` (an imported poison has no seed of
    its own: it is the same file for every seed)."""
    poison = victim.poison
    if poison is not None and not is_external(poison.attack):
        poison = replace(poison, seed=seed)
    return replace(victim, seed=seed, poison=poison)


def with_seeds(cells: Iterable[Cell], seeds: Sequence[int] | None) -> list[Cell]:
    """Each cell once per seed (the cells as they are without `seeds`)."""
    cells = list(cells)
    if not seeds:
        return cells
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds: each seed once, got {list(seeds)}")
    return [replace(c, victim=reseed(c.victim, s)) for s in seeds for c in cells]


__all__ = ["DEFAULT_SEED", "Measurement", "measured", "paired", "reseed", "with_seeds"]
