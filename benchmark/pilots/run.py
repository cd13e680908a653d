"""Run one pilot's stages and keep its summary: the untrained floor, the clean SimCLR victim, CP-C and CP-S made
with SimCLR and their victims (optionally random noise and the supervised victim), each with its CPU time,
then the shortcut diagnostics (diagnose.py). Everything resumes: a poison or victim already made is reused
(the store's poisons and checkpoints, the records under `<results>/records/pilot-<name>/`).

Records of pilots live under their own results folder (default results/pilots/), apart from the evidence
records; the summary of a pilot is `<results>/<name>.json`. The `mini` pilot (no changes) is the mini scale
itself: its records are the mini scale's own (results/records/mini/), reused where current.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

import torch

from attacks import ATTACKS
from attacks.spec import AttackSpec

from ..jobs.poison import make_poison
from ..jobs.poison_store import load_poison, poison_report
from ..jobs.splits import load_split
from ..jobs.victim import run_victim
from ..records import now, read_record, record_path, results_root, write_json_atomic
from ..report.leaderboard import damage
from ..report.tables import cell_metric, is_current
from ..specs import CONTROL, VictimSpec
from . import diagnose
from .config import PilotConfig, pilot_scale

DATASET, ARCH, ALGORITHM = "cifar10", "resnet18", "simclr"
STAGES = ("untrained", "clean", "cp-c", "cp-s", "random", "supervised")
DEFAULT_STAGES = ("untrained", "clean", "cp-c", "cp-s")
ATTACK_STAGES = ("cp-c", "cp-s", "random")
SEED = 1112  # the poisons' seed, the floor's, and the first victim seed
VICTIM_SEEDS = (1112, 1113, 1114, 1115, 1116)  # the victim seeds a summary looks for (`--seeds`)


def attack_spec(attack: str, scale: str) -> AttackSpec:
    return ATTACKS.get(attack).spec_for(DATASET, ALGORITHM, ARCH, scale)


def victim_spec(scale: str, attack: str | None = None, algorithm: str = ALGORITHM, seed: int = 1112) -> VictimSpec:
    return VictimSpec(algorithm, ARCH, DATASET, attack_spec(attack, scale) if attack else None, scale, seed)


def poison_seconds(spec: AttackSpec, store=None) -> float | None:
    """CPU-seconds of a poison (one thread): the sum of its epochs' times, over every session it took."""
    report = poison_report(spec, store) or {}
    history = report.get("history")
    if history:
        return round(sum(float(h.get("seconds", 0)) for h in history), 1)
    return report.get("seconds_this_run")


def victim_seconds(record: dict | None) -> float | None:
    if not record:
        return None
    history = record.get("history") or []
    train = sum(float(h.get("seconds", 0)) for h in history)
    return round(train + float(record.get("timing", {}).get("eval_s", 0)), 1)


class PilotRun:
    """One pilot's stages against a store and a results folder."""

    def __init__(self, config: PilotConfig, *, results: Path, store=None, data_root=None, device="cpu",
                 progress: bool = True, log: Callable[[str], None] = print, mini_results: Path | None = None):
        self.config, self.results, self.store, self.data_root = config, Path(results), store, data_root
        # where its victims' records are: the pilot's own folder, or for the mini pilot the mini scale's records
        self.records = Path(mini_results or results_root()) if config.is_mini else self.results
        self.device, self.progress, self.log = torch.device(device), progress, log
        self.scale = pilot_scale(config)

    @property
    def summary_path(self) -> Path:
        return self.results / f"{self.config.name}.json"

    def record(self, spec: VictimSpec) -> dict | None:
        """The victim's record where it was made with the settings of now (else None: it is made again)."""
        record = read_record(record_path(self.records, spec.scale, spec.key))
        return record if record is not None and is_current(record) else None

    def victim(self, spec: VictimSpec) -> dict:
        existing = self.record(spec)
        if existing is not None:
            return existing
        poison = make_poison(spec.poison, data_root=self.data_root, store=self.store, device=self.device,
                             progress=self.progress) if spec.poison is not None else None
        started = time.perf_counter()
        record = run_victim(spec, poison=poison, data_root=self.data_root, store=self.store,
                            results=self.records, device=self.device, progress=self.progress)
        self.log(f"[{self.config.name}] {spec.algorithm} on {spec.attack}: probe "
                 f"{cell_metric(record, DATASET):.2f} ({time.perf_counter() - started:.0f} s)")
        return record

    def run(self, stages: tuple[str, ...] = DEFAULT_STAGES, seeds: tuple[int, ...] = (SEED,)) -> dict:
        """The stages' victims for each victim seed in `seeds` (the poisons and the untrained floor: seed
        1112 only; a victim seed's spread is what the summary's damage spread measures)."""
        unknown = sorted(set(stages) - set(STAGES))
        if unknown:
            raise ValueError(f"unknown stage(s) {unknown}; stages: {list(STAGES)}")
        if not seeds or set(seeds) - set(VICTIM_SEEDS):
            raise ValueError(f"victim seeds must be among {list(VICTIM_SEEDS)}, got {list(seeds)}")
        images = self.config.per_class * self.config.classes
        if "supervised" in stages and images < self.scale.train["supervised"].batch_size:
            raise ValueError(f"the supervised stage needs at least one batch of "
                             f"{self.scale.train['supervised'].batch_size} images; this pilot has {images}")
        name = self.scale.name
        for stage in (s for s in STAGES if s in stages):  # in the order that makes the floor and clean first
            if stage == "untrained":
                self.victim(victim_spec(name, algorithm=CONTROL))
            elif stage == "supervised":
                self.victim(victim_spec(name, algorithm="supervised"))
                self.victim(victim_spec(name, "cp-c", algorithm="supervised"))
            else:
                for seed in seeds:
                    self.victim(victim_spec(name, None if stage == "clean" else stage, seed=seed))
            self.write_summary()
        return self.write_summary()

    def diagnostics(self, attack: str, record: dict) -> dict | None:
        spec = attack_spec(attack, self.scale.name)
        poison = load_poison(spec, self.store)
        if poison is None:
            return None
        data = load_split(self.scale, DATASET, "train", data_root=self.data_root, store=self.store)
        attacker = diagnose.attacker_losses(spec, poison, data, store=self.store) if attack != "random" else None
        return {"poison": poison.checksum[:12],
                "victim_trained_on_it": poison.checksum == (record.get("poison") or {}).get("checksum"),
                "attacker_loss": attacker,
                "victim_loss": diagnose.victim_losses(record, poison, data, store=self.store),
                "separability": diagnose.augmented_separability(poison, data, dataset=DATASET)}

    def summary(self, previous: dict | None = None) -> dict:
        """Every stage measured so far: probe, damage, CPU minutes, diagnostics (the pilot table's row). The
        diagnostics of `previous` (the summary written before) are kept where its victim record is the same."""
        previous = previous or {}
        name = self.scale.name
        floor, clean = self.record(victim_spec(name, algorithm=CONTROL)), self.record(victim_spec(name))
        floor_acc, clean_acc = cell_metric(floor, DATASET), cell_metric(clean, DATASET)
        out: dict = {"pilot": self.config.to_dict(), "changes": self.config.changes(), "scale": name,
                     "data": self.scale.describe_data(DATASET), "threads": torch.get_num_threads(),
                     "untrained": floor_acc, "clean": clean_acc, "clean_victim_minutes":
                     _minutes(victim_seconds(clean)), "clean_numbers": diagnose.victim_numbers(clean),
                     "attacks": {}, "updated": now()}
        cleans = {seed: cell_metric(r, DATASET) for seed in VICTIM_SEEDS
                  if (r := self.record(victim_spec(name, seed=seed))) is not None}
        if len(cleans) > 1:
            out["clean_seeds"] = cleans
        for attack in ATTACK_STAGES:
            record = self.record(victim_spec(name, attack))
            if record is None:
                continue
            probe = cell_metric(record, DATASET)
            spec = attack_spec(attack, name)
            before = previous.get("attacks", {}).get(attack, {})
            same = before.get("record") == record["key"][:20] and before.get("diagnostics") is not None
            out["attacks"][attack] = {
                "probe": probe, "damage": _round(damage(clean_acc, probe, floor_acc)),
                "poison_minutes": _minutes(poison_seconds(spec, self.store)),
                "victim_minutes": _minutes(victim_seconds(record)),
                "victim_numbers": diagnose.victim_numbers(record), "record": record["key"][:20],
                "diagnostics": before["diagnostics"] if same else self.diagnostics(attack, record)}
            out["attacks"][attack].update(self.seed_damages(attack, cleans, floor_acc))
        supervised = self.record(victim_spec(name, algorithm="supervised"))
        if supervised is not None:
            poisoned = self.record(victim_spec(name, "cp-c", algorithm="supervised"))
            out["supervised"] = {"clean": cell_metric(supervised, DATASET),
                                 "cp-c": cell_metric(poisoned, DATASET) if poisoned else None}
        return out

    def seed_damages(self, attack: str, cleans: dict[int, float], floor: float | None) -> dict:
        """The victim seeds' numbers of `attack` (see seed_summary) where two seeds or more were run."""
        pairs = {}
        for seed, clean in cleans.items():
            record = self.record(victim_spec(self.scale.name, attack, seed=seed))
            if record is not None:
                pairs[seed] = (clean, cell_metric(record, DATASET))
        return seed_summary(pairs, floor) if len(pairs) > 1 else {}

    def write_summary(self) -> dict:
        summary = self.summary(_read(self.summary_path))
        write_json_atomic(self.summary_path, summary)
        return summary


def seed_summary(pairs: dict[int, tuple[float, float]], floor: float | None) -> dict:
    """Each victim seed's clean and poisoned probe and its damage (against its own clean victim), and the
    mean and sample standard deviation of the damages where two or more are defined."""
    seeds = {seed: {"clean": clean, "probe": probe, "damage": _round(damage(clean, probe, floor))}
             for seed, (clean, probe) in pairs.items()}
    values = [e["damage"] for e in seeds.values() if e["damage"] is not None]
    out: dict = {"seeds": seeds}
    if len(values) > 1:
        t = torch.tensor(values, dtype=torch.float64)
        out.update(damage_mean=_round(float(t.mean())), damage_spread=_round(float(t.std())))
    return out


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _minutes(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / 60, 1)


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def read_summaries(results: Path) -> list[dict]:
    """Every pilot summary under `results` (sorted by name)."""
    return [s for p in sorted(Path(results).glob("*.json")) if (s := _read(p)).get("pilot")]
