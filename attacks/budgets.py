"""The built-in attacks' per-scale budget tables, known in one place so that a new scale (benchmark/scales.py,
`register_scale`) gets every attack's budget in one call: copied from the scale it is made like, with its
own values over them.

A table maps scale -> attack -> parameters (`budget_table`); a per-algorithm table maps (scale, attack,
algorithm) -> parameters (`per_algorithm_table`, e.g. the mini MoCo v2 attacker's warm-up).
"""
from __future__ import annotations

import copy
from typing import Any, Mapping

from .base import AttackParamError

_TABLES: list[dict[str, dict[str, dict[str, Any]]]] = []
_PER_ALGORITHM: list[dict] = []


def budget_table(table: dict[str, dict[str, dict[str, Any]]]) -> dict[str, dict[str, dict[str, Any]]]:
    """Register an attack module's scale -> attack -> parameters table (returned unchanged)."""
    _TABLES.append(table)
    return table


PerAlgorithm = dict[tuple[str, str, str], dict[str, Any]]


def per_algorithm_table(table: PerAlgorithm) -> PerAlgorithm:
    """Register a (scale, attack, algorithm) -> parameters table (returned unchanged)."""
    _PER_ALGORITHM.append(table)
    return table


def budgeted_attacks() -> set[str]:
    """Every attack with a per-scale budget."""
    return {attack for table in _TABLES for per_scale in table.values() for attack in per_scale}


def add_scale(name: str, like: str, overrides: Mapping[str, Mapping[str, Any]] | None = None) -> None:
    """Give scale `name` the budgets of scale `like` with `overrides` (attack -> parameters) over them.

    Raises AttackParamError for an attack without a budget or a parameter its budget does not have, and
    before any table is changed."""
    overrides = {attack: dict(values) for attack, values in (overrides or {}).items()}
    unknown = sorted(set(overrides) - budgeted_attacks())
    if unknown:
        raise AttackParamError(f"no per-scale budget for attack(s) {unknown}; attacks with one: "
                               f"{sorted(budgeted_attacks())}")
    for attack, values in overrides.items():
        known = {p for table in _TABLES if attack in table.get(like, {}) for p in table[like][attack]}
        wrong = sorted(set(values) - known)
        if wrong:
            raise AttackParamError(f"{attack}: unknown budget parameter(s) {wrong} at scale {like!r}; "
                                   f"valid: {sorted(known)}")
    for table in _TABLES:
        if like not in table:
            continue
        table[name] = {attack: {**copy.deepcopy(values), **overrides.get(attack, {})}
                       for attack, values in table[like].items()}
    for table in _PER_ALGORITHM:
        for (scale, attack, algorithm), values in list(table.items()):
            if scale == like:
                table[(name, attack, algorithm)] = copy.deepcopy(values)


def remove_scale(name: str) -> None:
    """Forget scale `name`'s budgets (a registered scale withdrawn, e.g. by a test)."""
    for table in _TABLES:
        table.pop(name, None)
    for table in _PER_ALGORITHM:
        for key in [k for k in table if k[0] == name]:
            del table[key]
