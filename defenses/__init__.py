"""Defenses: what a careful victim does to the data or its training. A new defense is one file with a
`Defense` subclass decorated by `@register_defense(name)` (from defenses.registry), plus its import at the
bottom of this file, or a plugin of the entry-point group `cp_bench.defenses` (docs/plugins.md)."""
from __future__ import annotations

from victims.plugins import GROUPS

from .base import Defense, DefenseParamError, ViewHook
from .registry import DEFENSES, register_defense
from .spec import DefenseSpec

from . import transforms  # noqa: E402,F401  (register "none", "jpeg", "grayscale", "blur", "bit-depth", "median")
from . import adversarial_training, matrix_completion  # noqa: E402,F401  (and these two)


def _adopt_defense(name: str, obj: object) -> type[Defense]:
    """A plugin's entry point object: a `Defense` subclass, named by the entry point."""
    if not (isinstance(obj, type) and issubclass(obj, Defense)):
        raise TypeError(f"a defense entry point must name a Defense subclass or a module that registers one "
                        f"with @register_defense, not {obj!r}")
    obj.name = name
    return obj


DEFENSES.plugins_from(GROUPS["defense"], _adopt_defense)  # everything registered above is built-in


def defense_params(spec: DefenseSpec, scale: str) -> dict:
    """The parameters `spec` runs with at `scale` (DefenseParamError / UnknownNameError when invalid)."""
    return DEFENSES.get(spec.name)().params(spec, scale)


__all__ = ["DEFENSES", "Defense", "DefenseParamError", "DefenseSpec", "ViewHook", "defense_params",
           "register_defense"]
