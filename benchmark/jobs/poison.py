"""One poison job: make the poison of an AttackSpec on the scale's training data and store it."""
from __future__ import annotations

import shutil
import time

from attacks import ATTACKS, Poison, PoisonError, generate_poison
from attacks.external import is_external
from attacks.spec import AttackSpec

from victims.distributed import default_device

from ..records import environment, now, write_json_atomic
from ..scales import get_scale
from .poison_store import (attack_settings, clear_stale_workdir, load_poison, missing_import, poison_path,  # noqa: F401
                           poison_report)
from .splits import load_split


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
    # checkpoints of a run started with other settings (a job stopped before the budget changed) are not resumed
    clear_stale_workdir(path.with_suffix(".work"), attack_settings(spec))
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
