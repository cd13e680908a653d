"""The poisons in the store: where each lives, the small record beside it, and whether it is current.

Both sides read it: a poison job (which makes and stores a poison) and a victim job (which receives one).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from attacks import ATTACKS, Poison
from attacks.external import is_external
from attacks.spec import AttackSpec

from victims.train import outcome_settings

from ..paths import store_root
from ..records import write_json_atomic


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


# Attack settings added after poisons were first recorded, with the value every earlier poison had in effect
# (CP's attacker had no warm-up): a poison recorded without them was made with these.
SETTINGS_BEFORE_THEY_EXISTED = {"warmup_epochs": 0}


def comparable(settings: dict) -> dict:
    """A poison's settings with its surrogate's training settings reduced to those that change the weights
    (and the settings added since, where it was recorded without them, at the value they had then)."""
    settings = {**SETTINGS_BEFORE_THEY_EXISTED, **settings}
    surrogate = settings.get("surrogate")
    if not surrogate or "train" not in surrogate:
        return settings
    return {**settings, "surrogate": {**surrogate, "train": outcome_settings(surrogate["train"])}}


def clear_stale_workdir(workdir: Path, settings: dict) -> None:
    """Keep a poison's work folder (its checkpoints) only if it was started with `settings`; stamp it with
    them. A folder without a stamp (made before stamps existed) is kept, as it always was."""
    stamp = workdir / "settings.json"
    if stamp.is_file():
        try:
            same = comparable(json.loads(stamp.read_text())) == comparable(settings)
        except ValueError:
            same = False
        if not same:
            shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True, exist_ok=True)
    if not stamp.is_file():
        write_json_atomic(stamp, settings)


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


def made_with(spec: AttackSpec, store=None) -> dict:
    """What the stored poison of `spec` was made with, as a victim's record keeps it: `settings` (its budget
    and surrogate) and `input_settings` (those of the poisons it starts from, by key). Empty for an imported
    poison or one whose record does not keep them."""
    report = poison_report(spec, store) or {}
    if is_external(spec.attack) or "settings" not in report:
        return {}
    made = {"settings": report["settings"]}
    inputs = {needed.key: (poison_report(needed, store) or {}).get("settings")
              for needed in ATTACKS.get(spec.attack)().requires(spec)}
    if inputs:
        made["input_settings"] = inputs
    return made


def made_as_now(spec: AttackSpec, poison_info: dict) -> bool:
    """Whether a victim record's poison (`poison_info`, see `made_with`) was made with the settings the
    attack has now, and from poisons made with theirs. A record without them (imported poisons, records made
    before they were kept) counts as current."""
    if is_external(spec.attack) or "settings" not in poison_info:
        return True
    if comparable(poison_info["settings"]) != comparable(attack_settings(spec)):
        return False
    inputs = poison_info.get("input_settings") or {}
    return all(needed.key not in inputs or inputs[needed.key] is None
               or comparable(inputs[needed.key]) == comparable(attack_settings(needed))
               for needed in ATTACKS.get(spec.attack)().requires(spec))


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
