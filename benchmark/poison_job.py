"""One poison job: make the poison of an AttackSpec on the scale's training data and store it."""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from attacks import ATTACKS, Poison, PoisonError, generate_poison
from attacks.external import is_external
from attacks.spec import AttackSpec

from victims.train import outcome_settings

from .paths import store_root
from .records import environment, now, write_json_atomic
from .scales import get_scale
from .victim_job import default_device, load_split


def poison_path(spec: AttackSpec, store=None) -> Path:
    return store_root(store) / "poisons" / spec.scale / f"{spec.attack}-{spec.key[:20]}.safetensors"


def poison_report(spec: AttackSpec, store=None) -> dict | None:
    """The record written beside a stored poison (history, resumed_from_epoch, timing), if any."""
    try:
        return json.loads(poison_path(spec, store).with_suffix(".json").read_text())
    except (OSError, ValueError):
        return None


def attack_settings(spec: AttackSpec) -> dict:
    """The attack's settings at its scale (its budget with `spec.params` over it, and its surrogate's settings
    where it trains one), as a poison's record keeps them."""
    attack = ATTACKS.get(spec.attack)()
    settings = dict(attack.params(spec))
    surrogate = attack.surrogate_settings(spec)
    if surrogate:
        settings["surrogate"] = surrogate
    return json.loads(json.dumps(settings))


def comparable(settings: dict) -> dict:
    """A poison's settings with its surrogate's training settings reduced to those that change the weights."""
    surrogate = settings.get("surrogate")
    if not surrogate or "train" not in surrogate:
        return settings
    return {**settings, "surrogate": {**surrogate, "train": outcome_settings(surrogate["train"])}}


def poison_is_current(spec: AttackSpec, store=None) -> bool:
    """Whether the stored poison of `spec` was made with the attack's settings of now, from the stored
    versions of the poisons it starts from (CP-S from CP-C). A poison without these in its record (made
    before they were kept) counts as current."""
    report = poison_report(spec, store)
    if report is None or is_external(spec.attack):  # an imported poison has no settings to compare
        return True
    if "settings" in report and comparable(report["settings"]) != comparable(attack_settings(spec)):
        return False
    for needed in ATTACKS.get(spec.attack)().requires(spec):
        made_from = report.get("inputs", {}).get(needed.key)
        if made_from is not None and (made_from != (poison_report(needed, store) or {}).get("checksum")
                                      or not poison_is_current(needed, store)):
            return False
    return True


def load_poison(spec: AttackSpec, store=None) -> Poison | None:
    """The stored, verified poison of `spec`, or None when it has not been made yet, or was made with
    other settings or from another version of the poison it starts from (then it is to be made again)."""
    path = poison_path(spec, store)
    if not path.is_file() or not poison_is_current(spec, store):
        return None
    return Poison.load(path, expected_spec=spec)


def missing_import(spec: AttackSpec, store=None) -> str:
    """Why the imported poison `spec` cannot be used, and how to provide it."""
    name = spec.attack.split(":", 1)[1]
    return (f"the poison {spec.attack} for {spec.dataset} at the {spec.scale} scale is not in the store "
            f"({poison_path(spec, store)}): an external poison is never generated; run `bench import-poison {name} "
            f"FILE --dataset {spec.dataset} --scale {spec.scale}` first (the store is per machine: import it again, "
            "or copy the file and its .json, into the store the jobs use, e.g. a cluster's shared store)")


def make_poison(spec: AttackSpec, *, data_root=None, store=None, device=None, progress: bool = True) -> Poison:
    """Generate (or reuse) the poison of `spec` for the data standing for `spec.dataset` at its scale; an
    external poison (`ext:NAME`) is only ever loaded (PoisonError when it was not imported)."""
    existing = load_poison(spec, store)
    if existing is not None:
        return existing
    if is_external(spec.attack):
        raise PoisonError(missing_import(spec, store))
    path = poison_path(spec, store)
    if path.is_file():  # made with other settings or inputs: start again, not from its checkpoints
        if progress:
            print(f"poison {spec.attack} ({spec.key[:12]}) was made with other settings or inputs: making it again")
        shutil.rmtree(path.with_suffix(".work"), ignore_errors=True)
    # poisons this one starts from (CP-S from CP-C) are made, or reused, and stored first
    inputs = {needed.key: make_poison(needed, data_root=data_root, store=store, device=device, progress=progress)
              for needed in ATTACKS.get(spec.attack)().requires(spec)}
    data = load_split(get_scale(spec.scale), spec.dataset, "train", data_root=data_root, store=store)
    started, report = time.perf_counter(), {}
    device = device or default_device()
    poison = generate_poison(spec, data.images, data.labels, data.index, device=device,
                             workdir=path.with_suffix(".work"), progress=progress, inputs=inputs, report=report)
    poison.save(path)
    # the poison's own small record: how it was made (kept beside it in the store)
    write_json_atomic(path.with_suffix(".json"), {
        "kind": "poison", "spec": spec.to_dict(), "key": spec.key, "checksum": poison.checksum, "per": poison.per,
        "settings": attack_settings(spec), "inputs": {key: made.checksum for key, made in inputs.items()},
        "data": f"{data.source}, {len(data)} images", "device": str(device), "created": now(),
        "seconds_this_run": round(time.perf_counter() - started, 1), **report, **environment()})
    if progress:
        print(f"poison {spec.attack} ({spec.key[:12]}) made in {time.perf_counter() - started:.1f} s: {path}")
    return poison
