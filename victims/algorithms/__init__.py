"""The learning algorithms: one file each, one registry."""
from __future__ import annotations

from torch import nn

from ..plugins import GROUPS
from ..registry import Registry
from .barlow_twins import BarlowTwins
from .base import Algorithm, MomentumAlgorithm
from .byol import BYOL
from .moco import MoCo
from .simclr import SimCLR
from .simsiam import SimSiam
from .supervised import Supervised

ALGORITHMS: Registry[type[Algorithm]] = Registry("algorithm")
for _cls in (SimCLR, MoCo, BYOL, Supervised, SimSiam, BarlowTwins):
    ALGORITHMS.register(_cls.name)(_cls)


def _adopt_algorithm(name: str, obj: object) -> type[Algorithm]:
    """A plugin's entry point object: an `Algorithm` subclass, named by the entry point."""
    if not (isinstance(obj, type) and issubclass(obj, Algorithm)):
        raise TypeError(f"an algorithm entry point must name an Algorithm subclass or a module that registers "
                        f"one in ALGORITHMS, not {obj!r}")
    obj.name = name
    return obj


ALGORITHMS.plugins_from(GROUPS["algorithm"], _adopt_algorithm)  # the six above are built-in

# The algorithms the paper measures (its claims are about these; the grids take every registered one)
PAPER_ALGORITHMS = ("simclr", "moco", "byol")


def contrastive_algorithms() -> list[str]:
    """The registered contrastive algorithms, in registration order (the paper's three first)."""
    return [name for name in ALGORITHMS if ALGORITHMS.get(name).contrastive]


def table_algorithms() -> list[str]:
    """The contrastive algorithms that are columns of the paper's table grids: the paper's three and any
    plugin's (not the built-in successors, whose cells are the `beyond` grid's)."""
    return [name for name in contrastive_algorithms() if ALGORITHMS.get(name).paper_tables]


def build_algorithm(name: str, encoder: nn.Module, num_classes: int, **settings) -> Algorithm:
    """Wrap `encoder` in algorithm `name` with its heads; `settings` override the paper's defaults."""
    return ALGORITHMS.get(name)(encoder, num_classes, **settings)


__all__ = ["ALGORITHMS", "PAPER_ALGORITHMS", "Algorithm", "MomentumAlgorithm", "BarlowTwins", "BYOL", "MoCo", "SimCLR",
           "SimSiam", "Supervised", "build_algorithm", "contrastive_algorithms",
           "table_algorithms"]
