"""The attack registry: `ATTACKS` and the `@register_attack(name)` decorator. The attack modules import them
from here (not from the `attacks` package, which imports those modules), so no import goes in a circle."""
from __future__ import annotations

from typing import Callable

from victims.registry import Registry

from .base import Attack

ATTACKS: Registry[type[Attack]] = Registry("attack")


def register_attack(name: str) -> Callable[[type[Attack]], type[Attack]]:
    """Class decorator: register an `Attack` subclass under `name` (and set its `name`)."""
    def decorate(cls: type[Attack]) -> type[Attack]:
        cls.name = name
        return ATTACKS.register(name)(cls)

    return decorate
