"""The end-to-end parity table (issue 34, part 2): for each poison, who made it (their CP loop or ours) and who
trained the victim on it (their victim loop or ours), the probe accuracy and the damage, read from the records:
ours -> ours from results/records/mini/ (the evidence), every other pairing from results/parity/records/mini/.

damage = (clean - attacked) / (clean - untrained), with the clean victim of the same trainer (ours: the mini
clean records; theirs: their clean victim probed by our probe) and our untrained floor.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from victims.atomic import write_text_atomic
from ..jobs.seeds import Measurement, mean_text

ROOT = Path(__file__).resolve().parents[2]
OURS = ROOT / "results" / "records" / "mini"
PARITY = ROOT / "results" / "parity" / "records" / "mini"
TABLE = ROOT / "results" / "parity" / "table.md"

# (label, victim algorithm, our attack row, their poison's ext: name)
POISONS = [
    ("CP-C made with SimCLR", "simclr", ("cp-c", "simclr"), "ext:ref-cp-c-simclr"),
    ("CP-S made with SimCLR", "simclr", ("cp-s", "simclr"), "ext:ref-cp-s-simclr"),
    ("CP-C made with MoCo v2 (warm-up, as our mini)", "moco", ("cp-c", "moco"), "ext:ref-cp-c-moco"),
    ("CP-C made with MoCo v2 (no warm-up, as theirs)", "moco", None, "ext:ref-cp-c-moco-nowarmup"),
]


@dataclass(frozen=True)
class Row:
    trainer: str  # "ours" or "theirs": who trained the victim
    attack: str  # "none", our row ("cp-c"), or an ext: name
    poison_algorithm: str | None
    algorithm: str
    seed: int
    probe: float


def _rows(folder: Path, trainer_of) -> list[Row]:
    rows = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        r = json.loads(path.read_text())
        v = r["victim"]
        if v["dataset"] != "cifar10" or v["arch"] != "resnet18" or "cifar10" not in r.get("metrics", {}):
            continue
        poison = v.get("poison") or {}
        rows.append(Row(trainer_of(r), r["attack"], poison.get("algorithm"), v["algorithm"], int(v["seed"]),
                        float(r["metrics"]["cifar10"]["probe_best"])))
    return rows


def load_rows(ours: Path = OURS, parity: Path = PARITY) -> list[Row]:
    return (_rows(ours, lambda r: "ours")
            + _rows(parity, lambda r: "theirs" if r.get("trained_by") == "reference" else "ours"))


def _pick(rows: list[Row], trainer: str, attack: str, algorithm: str, poison_algorithm: str | None = None,
          from_parity_only: bool = False) -> Measurement:
    values = {r.seed: r.probe for r in rows if r.trainer == trainer and r.attack == attack
              and r.algorithm == algorithm and (poison_algorithm is None or r.poison_algorithm == poison_algorithm)}
    return Measurement(tuple(values[s] for s in sorted(values)), tuple(sorted(values)))


def damage(attacked: Measurement, clean: Measurement, floor: float) -> Measurement:
    """Per seed of the attacked victim, against the clean victim of the same trainer and seed (its clean mean
    where that seed has no clean victim), as `bench claims` pairs them."""
    if not attacked.n or not clean.n:
        return Measurement()
    by_seed = clean.by_seed()
    return Measurement(tuple((by_seed.get(s, clean.mean) - a) / (by_seed.get(s, clean.mean) - floor)
                             for s, a in zip(attacked.seeds, attacked.values)), attacked.seeds)


def _text(m: Measurement, digits: int = 1) -> str:
    if not m.n:
        return "-"
    if digits == 1:
        return mean_text(m.mean, m.spread, m.n)
    return f"{m.mean:.2f}" + (f" ± {m.spread:.2f} ({m.n} seeds)" if m.n > 1 else "")


def table(rows: list[Row] | None = None) -> str:
    rows = load_rows() if rows is None else rows
    floor = _pick(rows, "ours", "none", "untrained")
    floor_value = floor.mean if floor.n else float("nan")
    lines = ["| poison | made by | victim trained by | probe (%) | clean, same trainer | damage |",
             "|:--|:--|:--|--:|--:|--:|"]
    for label, algorithm, our_row, ext in POISONS:
        clean = {t: _pick(rows, t, "none", algorithm) for t in ("ours", "theirs")}
        cells = []
        if our_row is not None:
            cells.append(("ours", "ours", _pick(rows, "ours", our_row[0], algorithm, our_row[1])))
            cells.append(("ours", "theirs", _pick(rows, "theirs", our_row[0], algorithm, our_row[1])))
        cells.append(("theirs", "ours", _pick(rows, "ours", ext, algorithm)))
        cells.append(("theirs", "theirs", _pick(rows, "theirs", ext, algorithm)))
        for made, trained, m in cells:
            c = clean[trained]
            lines.append(f"| {label} | {made} | {trained} | {_text(m)} | {_text(c)} | "
                         f"{_text(damage(m, c, floor_value), 2)} |")
    lines.append("")
    lines.append(f"Untrained floor (our probe on a random width-0.125 ResNet-18): {floor_value:.1f}. "
                 "`-`: not run yet.")
    return "\n".join(lines) + "\n"


def write_table() -> Path:
    text = ("# End-to-end parity at the mini scale\n\nGenerated by `bench parity table` from results/records/mini/ "
            "(ours -> ours) and results/parity/records/mini/ (every other pairing); docs/parity.md explains it.\n\n"
            + table())
    write_text_atomic(TABLE, text)
    return TABLE
