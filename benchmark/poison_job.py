"""One poison job: make the poison of an AttackSpec on the scale's training data and store it."""
from __future__ import annotations

import time
from pathlib import Path

from attacks import ATTACKS, Poison, generate_poison
from attacks.spec import AttackSpec

from .paths import store_root
from .records import environment, now, write_json_atomic
from .scales import get_scale
from .victim_job import default_device, load_split


def poison_path(spec: AttackSpec, store=None) -> Path:
    return store_root(store) / "poisons" / spec.scale / f"{spec.attack}-{spec.key[:20]}.safetensors"


def poison_report(spec: AttackSpec, store=None) -> dict | None:
    """The record written beside a stored poison (history, resumed_from_epoch, timing), if any."""
    import json

    try:
        return json.loads(poison_path(spec, store).with_suffix(".json").read_text())
    except (OSError, ValueError):
        return None


def load_poison(spec: AttackSpec, store=None) -> Poison | None:
    """The stored, verified poison of `spec`, or None when it has not been made yet."""
    path = poison_path(spec, store)
    return Poison.load(path, expected_spec=spec) if path.is_file() else None


def make_poison(spec: AttackSpec, *, data_root=None, store=None, device=None, progress: bool = True) -> Poison:
    """Generate (or reuse) the poison of `spec` for the data standing for `spec.dataset` at its scale."""
    existing = load_poison(spec, store)
    if existing is not None:
        return existing
    # poisons this one starts from (CP-S from CP-C) are made, or reused, and stored first
    inputs = {needed.key: make_poison(needed, data_root=data_root, store=store, device=device, progress=progress)
              for needed in ATTACKS.get(spec.attack)().requires(spec)}
    data = load_split(get_scale(spec.scale), spec.dataset, "train", data_root=data_root, store=store)
    path = poison_path(spec, store)
    started, report = time.perf_counter(), {}
    device = device or default_device()
    poison = generate_poison(spec, data.images, data.labels, data.index, device=device,
                             workdir=path.with_suffix(".work"), progress=progress, inputs=inputs, report=report)
    poison.save(path)
    # the poison's own small record: how it was made (kept beside it in the store)
    write_json_atomic(path.with_suffix(".json"), {
        "kind": "poison", "spec": spec.to_dict(), "key": spec.key, "checksum": poison.checksum, "per": poison.per,
        "data": f"{data.source}, {len(data)} images", "device": str(device), "created": now(),
        "seconds_this_run": round(time.perf_counter() - started, 1), **report, **environment()})
    if progress:
        print(f"poison {spec.attack} ({spec.key[:12]}) made in {time.perf_counter() - started:.1f} s: {path}")
    return poison
