"""The paper's claims, checked against the records of a scale (no training: reads records only).

`bench claims --scale mini` prints each claim with its numbers and whether it holds, fails, or is not
measured yet; `--write` publishes the result as results/claims/<scale>.json and its table as
results/claims/<scale>.md (what the README shows) and `--check` fails when the records no longer give the
published result (CI runs it on the committed records).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from victims.algorithms import PAPER_ALGORITHMS

from ..grids import attack_spec
from ..jobs.seeds import Measurement, paired
from ..records import results_root
from ..specs import CONTROL, VictimSpec
from .claims_report import claims_markdown
from .leaderboard import damage
from .tables import RecordCache, build_table, write_text_atomic

TAU_TABLES = ("effectiveness", "transfer_algorithms", "architectures")
ALL_TABLES = ("effectiveness", "downstream", "architectures", "transfer_supervised", "transfer_algorithms",
              "motivation")


@dataclass
class Claim:
    name: str
    statement: str
    status: str = "not measured"  # holds, fails, not measured
    numbers: dict = field(default_factory=dict)
    spreads: dict = field(default_factory=dict)  # a number's spread over seeds, where measured with several
    notes: list = field(default_factory=list)  # e.g. a margin inside the seed spread

    def check(self, label: str, value: float | None, threshold: float, spread: float | None) -> None:
        """Record `value`'s seed spread and say so when its margin to `threshold` is inside it."""
        if spread is None or value is None:
            return
        self.spreads[label] = _round(spread, 3)
        if abs(value - threshold) <= spread:
            self.notes.append(f"{label}: {value:.3g} is within its seed spread ({spread:.2g}) of the threshold "
                              f"{threshold:g}, so the verdict is not settled by these seeds")


class Numbers:
    """Accuracy of a victim on CIFAR-10 (probe, or a supervised victim's test accuracy) from the records: the
    mean over the seeds measured, with the spread of each derived number where there are several."""

    def __init__(self, results: Path, scale: str):
        self.scale, self.cache = scale, RecordCache(results, scale)

    def victim(self, algorithm: str, row: str = "none") -> VictimSpec:
        return VictimSpec(algorithm, "resnet18", "cifar10", attack_spec(row, "cifar10", algorithm, self.scale),
                          scale=self.scale)

    def measure(self, algorithm: str, row: str = "none") -> Measurement:
        return self.cache.measure(self.victim(algorithm, row), "cifar10")

    def accuracy(self, algorithm: str, row: str = "none") -> float | None:
        return self.measure(algorithm, row).mean

    def untrained(self) -> float | None:
        return self.cache.measure(replace(self.victim("simclr"), algorithm=CONTROL), "cifar10").mean

    def damage(self, algorithm: str, row: str) -> float | None:
        return damage(self.accuracy(algorithm), self.accuracy(algorithm, row), self.untrained())

    def damage_spread(self, algorithm: str, row: str) -> float | None:
        """The spread of the damage over the seeds measured both clean and attacked."""
        untrained = self.untrained()
        return paired(self.measure(algorithm), self.measure(algorithm, row),
                      lambda clean, attacked: damage(clean, attacked, untrained)).spread

    def change_spread(self, algorithm: str, row: str, reference: str = "none") -> float | None:
        """The spread over seeds of (accuracy on `row` - accuracy on `reference`)."""
        return paired(self.measure(algorithm, row), self.measure(algorithm, reference), lambda a, b: a - b).spread


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def _status(values: list[bool | None]) -> str:
    if any(v is None for v in values) or not values:
        return "not measured"
    return "holds" if all(values) else "fails"


def check_claims(results: Path, scale: str) -> list[Claim]:
    n = Numbers(results, scale)
    claims: list[Claim] = []

    taus = {}
    for grid in ALL_TABLES:
        a = build_table(grid, scale, results).agreement
        taus[grid] = {"kendall_tau": _round(a.kendall_tau), "cells": a.cells_measured}
    claim = Claim("kendall_tau", "Kendall's tau between our cells and the paper's >= 0.4 in effectiveness, "
                  "transfer_algorithms and architectures (reported for every table)", numbers=taus)
    claim.status = _status([None if taus[g]["kendall_tau"] is None else taus[g]["kendall_tau"] >= 0.4
                            for g in TAU_TABLES])
    claims.append(claim)

    per_algorithm, holds = {}, []
    claim = Claim("cp_damage", "CIFAR-10: for each of SimCLR, MoCo v2, BYOL, the stronger of the matched "
                  "CP-S and CP-C poisons has damage >= 0.4")
    for algorithm in PAPER_ALGORITHMS:
        d = {row: _round(n.damage(algorithm, row)) for row in ("cp-s", "cp-c")}
        best = max((v for v in d.values() if v is not None), default=None)
        per_algorithm[algorithm] = {**d, "stronger": best}
        holds.append(None if best is None else best >= 0.4)
        for row, value in d.items():
            claim.check(f"{algorithm} {row}", value, 0.4, n.damage_spread(algorithm, row))
    claim.status, claim.numbers = _status(holds), per_algorithm
    claims.append(claim)

    changes = {}
    claim = Claim("random_noise", "Random noise changes each contrastive victim's accuracy by at most 3 "
                  "points (victims measured so far)")
    for algorithm in PAPER_ALGORITHMS:
        clean, noisy = n.accuracy(algorithm), n.accuracy(algorithm, "random")
        changes[algorithm] = _round(None if clean is None or noisy is None else noisy - clean, 2)
        if changes[algorithm] is not None:
            claim.check(algorithm, abs(changes[algorithm]), 3, n.change_spread(algorithm, "random"))
    measured = [abs(v) <= 3 for v in changes.values() if v is not None]
    claim.status, claim.numbers = _status(measured or [None]), changes
    claims.append(claim)

    drops = {}
    claim = Claim("cp_c_supervised", "transfer_supervised: a CP-C poison lowers the supervised victim by "
                  ">= 30 points")
    for algorithm in PAPER_ALGORITHMS:
        row = f"cp-c@{algorithm}"
        clean, attacked = n.accuracy("supervised"), n.accuracy("supervised", row)
        drops[row] = _round(None if clean is None or attacked is None else clean - attacked, 2)
        claim.check(row, drops[row], 30, n.change_spread("supervised", "none", row))
    best = max((v for v in drops.values() if v is not None), default=None)
    claim.status, claim.numbers = _status([None if best is None else best >= 30]), drops
    claims.append(claim)

    for attack in ("ap-t", "ue-s"):
        clean, attacked = n.accuracy("supervised"), n.accuracy("supervised", attack)
        drop = None if clean is None or attacked is None else clean - attacked
        simclr = n.damage("simclr", attack)
        claim = Claim(f"{attack}_motivation", f"{attack} lowers the supervised victim by >= 30 points while "
                      "its damage on SimCLR stays below 0.3",
                      _status([None if drop is None else drop >= 30, None if simclr is None else simclr < 0.3]),
                      {"supervised_drop": _round(drop, 2), "simclr_damage": _round(simclr)})
        claim.check("supervised_drop", drop, 30, n.change_spread("supervised", "none", attack))
        claim.check("simclr_damage", simclr, 0.3, n.damage_spread("simclr", attack))
        claims.append(claim)
    return claims


def claims_path(results: Path, scale: str) -> Path:
    return Path(results) / "claims" / f"{scale}.json"


def claims_markdown_path(results: Path, scale: str) -> Path:
    return Path(results) / "claims" / f"{scale}.md"


def to_json(claims: list[Claim], scale: str) -> dict:
    return {"scale": scale, "claims": [asdict(c) for c in claims]}


def differences(published: dict, current: dict) -> list[str]:
    """Claims whose status or numbers differ between the published file and the records."""
    old = {c["name"]: c for c in published.get("claims", [])}
    out = []
    for c in current["claims"]:
        before = old.get(c["name"])
        keys = ("status", "numbers", "spreads")
        if before is None or any(before.get(k, {}) != c[k] for k in keys):
            out.append(f"{c['name']}: published {json.dumps(before and {k: before.get(k) for k in keys})}"
                       f", records give {json.dumps({k: c[k] for k in keys})}")
    return out


def claims_command(results, scale: str, *, write: bool = False, check: bool = False) -> int:
    """`bench claims`: print each claim with its numbers; `write`: publish them; `check`: compare them with the
    published file. The exit code: 1 when they differ, else 0."""
    results = results_root(results)
    claims = check_claims(results, scale)
    for c in claims:
        print(f"[{c.status:>12}] {c.statement}\n               {json.dumps(c.numbers)}")
        if c.spreads:
            print(f"               seed spread: {json.dumps(c.spreads)}")
        for note in c.notes:
            print(f"               note: {note}")
    current, path = to_json(claims, scale), claims_path(results, scale)
    if write:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, json.dumps(current, indent=1) + "\n")
        write_text_atomic(claims_markdown_path(results, scale), claims_markdown(current))
        print(f"wrote {path} and {claims_markdown_path(results, scale).name}")
    if check:
        try:
            published = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise SystemExit(f"no published claims to check at {path} ({e}); run `bench claims --scale "
                             f"{scale} --write` after the runs")
        problems = differences(published, current)
        table = claims_markdown_path(results, scale)
        if not table.exists() or table.read_text() != claims_markdown(current):
            problems.append(f"{table} is not the table of the records' claims")
        for p in problems:
            print(f"MISMATCH {p}")
        print(f"{len(problems)} claim(s) differ from {path}" if problems else f"the records give {path}")
        return 1 if problems else 0
    return 0


__all__ = ["Claim", "check_claims", "claims_command", "claims_markdown_path", "claims_path", "differences",
           "to_json"]
