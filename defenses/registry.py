"""The defense registry: `DEFENSES` and the `@register_defense(name)` decorator (the defense modules import
them from here, not from the package, so no import goes in a circle)."""
from __future__ import annotations

from typing import Callable

from victims.registry import Registry

from .base import Defense

DEFENSES: Registry[type[Defense]] = Registry("defense")


def register_defense(name: str) -> Callable[[type[Defense]], type[Defense]]:
    """Class decorator: register a `Defense` subclass under `name` (and set its `name`)."""
    def decorate(cls: type[Defense]) -> type[Defense]:
        cls.name = name
        return DEFENSES.register(name)(cls)

    return decorate
