"""Poisons made elsewhere: the attack names `ext:NAME`.

An external poison is not generated here: `bench import-poison` verifies a file made by other code and
stores it as the poison of `external_spec(NAME, dataset, scale)`; everything else finds it by that spec.
"""
from __future__ import annotations

import re

from .spec import AttackSpec

PREFIX = "ext:"
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class ExternalNameError(ValueError):
    """An `ext:` name that cannot name a stored poison."""


def is_external(attack: str | None) -> bool:
    """Whether `attack` names an imported poison (`ext:NAME`)."""
    return isinstance(attack, str) and attack.startswith(PREFIX)


def external_name(name: str) -> str:
    """`ext:NAME` for NAME or `ext:NAME`; ExternalNameError naming the rule when NAME cannot be a file name part."""
    bare = name[len(PREFIX):] if is_external(name) else name
    if not NAME_PATTERN.fullmatch(bare):
        raise ExternalNameError(f"external poison name {bare!r} is not valid: use 1-64 letters, digits, '.', '_' "
                                "or '-', starting with a letter or digit (e.g. ext:my-attack)")
    return PREFIX + bare


def external_spec(name: str, dataset: str, scale: str) -> AttackSpec:
    """The spec an imported poison is stored under: no algorithm, architecture or parameters."""
    return AttackSpec(external_name(name), dataset, scale=scale)
