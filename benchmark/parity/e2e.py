"""End to end at the mini scale, both ways (issue 34, part 2):

- `reference_poison`: their CP loop (their encoder and perturbation turns, their update rule, kornia-pil
  augmentations) at our mini settings on the same 10,000 CIFAR-10 images with our width-0.125 ResNet-18; the
  poisoned images it releases are imported as `ext:ref-...` and trained on by our victims (`bench victim`).
- `reference_victim`: their victim training (their step, PIL augmentations, warm-up and cosine) at the mini
  width and epochs on a poison of ours (or clean data), probed by our probe; a record under results/parity/.

Every setting is read from our mini scale (attacks/contrastive_poisoning.py budgets, victims/recipes.py), so
both sides run at equal settings; only the code differs.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from attacks.contrastive_poisoning import budget, surrogate
from attacks.spec import AttackSpec
from victims.recipes import build_encoder, model_settings

from ..jobs.import_poison import import_poison
from ..jobs.splits import describe, load_split
from ..paths import store_root
from ..records import RECORD_FORMAT, environment, now, record_path, results_root, write_json_atomic
from ..scales import get_scale
from ..specs import EvalSpec, VictimSpec
from .reference import Reference

CL_ALG = {"simclr": "SimCLR", "moco": "MoCov2", "byol": "BYOL"}
SCALE = "mini"
DATASET = "cifar10"


def workdir_for(name: str, store=None) -> Path:
    return store_root(store) / "parity" / SCALE / name


def run_reference(task_name: str, workdir: Path, reference: Reference, task: dict, *, log: bool = True) -> dict:
    """Run one refside task in a subprocess (its output to WORKDIR/log.txt) and return its outputs."""
    workdir.mkdir(parents=True, exist_ok=True)
    previous = workdir / "task.json"
    if previous.is_file() and json.loads(previous.read_text()) != json.loads(json.dumps(task)):
        # another task's checkpoints are not resumed: the old run is kept beside, under a new name
        aside = workdir.with_name(f"{workdir.name}.superseded-{time.strftime('%Y%m%d-%H%M%S')}")
        workdir.rename(aside)
        workdir.mkdir(parents=True)
        if (aside / "inputs.pt").is_file():  # the images just handed over: they stay with the new run
            (aside / "inputs.pt").rename(workdir / "inputs.pt")
    (workdir / "task.json").write_text(json.dumps(task, indent=1))
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    with open(workdir / "log.txt", "a") as out:
        cmd = [sys.executable, "-m", "benchmark.parity.refside", task_name, str(workdir), str(reference.root)]
        proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=env,
                              cwd=Path(__file__).resolve().parents[2])
    if proc.returncode:
        tail = (workdir / "log.txt").read_text().splitlines()[-15:]
        raise RuntimeError(f"the reference's {task_name} failed (exit {proc.returncode}); "
                           f"{workdir / 'log.txt'} ends:\n" + "\n".join(tail))
    return torch.load(workdir / "outputs.pt", weights_only=True)


def cp_task(attack: str, algorithm: str, *, warmup: bool | None = None, seed: int = 1112) -> tuple[dict, dict]:
    """Their opt for our mini CP budget of `attack` made with `algorithm` (and the budget itself).
    `warmup` None keeps our mini setting (a warm-up for MoCo v2 only), False/True force it off/on."""
    spec = AttackSpec(attack, DATASET, algorithm, "resnet18", seed=seed, scale=SCALE)
    p = budget(spec)
    model, config, _ = surrogate(spec, p, 10, 32)
    settings = model_settings(SCALE).algorithm_settings[algorithm]
    per_pass = 10000 // config.batch_size
    model_step = min(int(p["model_step"]) or per_pass, per_pass)
    warm_epochs = p["warmup_epochs"] if warmup is None else (
        SCALE_WARMUP.get((attack, algorithm), 0) if warmup else 0)
    opt = {"batch_size": config.batch_size, "epochs": config.epochs, "learning_rate": config.lr,
           "weight_decay": config.weight_decay, "momentum": config.momentum, "seed": seed,
           "classwise": attack == "cp-c", "samplewise": attack == "cp-s",
           "model_step": model_step, "noise_step": min(int(p["noise_step"]) or per_pass, per_pass),
           "num_steps": int(p["num_steps"]), "step_size": float(p["step_size"]), "delta_weight": float(p["eps"]),
           "allow_mmt_grad": bool(p["dual_branch"])}
    if algorithm in ("simclr", "moco"):
        opt["temp"] = settings["temperature"]
    if algorithm == "moco":
        opt.update(moco_k=settings["queue_size"], moco_m=settings["momentum"], moco_dim=settings["out_dim"])
    task = {"cl_alg": CL_ALG[algorithm], "width": model_settings(SCALE).width, "opt": opt,
            "release_epoch": max(1, round(config.epochs * p["release_fraction"])),
            "warmup_steps": int(warm_epochs) * model_step, "gradient_share": launch_share(algorithm)}
    if algorithm == "byol":
        task["byol"] = {k: settings[k] for k in ("hidden_dim", "out_dim", "momentum")}
    return task, p


def launch_share(algorithm: str) -> float:
    """The share of their one-process gradient that each parameter gets in their 4-process launch: SimCLR's
    GatherLayer (`util.py:198`) gives each process only its slice's gradient and DDP averages, so 1/4 (the
    `gradient_share` our SimCLR emulates, checked against their real 4-process run by `ddp4-simclr`); the
    others' losses average per process, so their gradient is the one-process one."""
    return float(model_settings(SCALE).algorithm_settings[algorithm].get("gradient_share", 1.0))


# the warm-up our mini scale gives each attacker that has one (SCALE_PER_ALGORITHM), for `warmup=True`
SCALE_WARMUP = {("cp-c", "moco"): 12, ("cp-s", "moco"): 3}


def reference_poison(reference: Reference, attack: str, algorithm: str, *, warmup: bool | None = None,
                     name: str | None = None, data_root=None, store=None, seed: int = 1112) -> dict:
    """Make the poison with their CP loop, import what it releases as `ext:NAME`; returns a summary."""
    task, p = cp_task(attack, algorithm, warmup=warmup, seed=seed)
    tag = name or f"ref-{attack}-{algorithm}" + ("" if warmup is None else ("-warmup" if warmup else "-nowarmup"))
    data = load_split(get_scale(SCALE), DATASET, "train", data_root=data_root, store=store)
    workdir = workdir_for(tag, store)
    workdir.mkdir(parents=True, exist_ok=True)
    if not (workdir / "inputs.pt").is_file():
        torch.save({"images": data.images, "labels": data.labels, "index": data.index}, workdir / "inputs.pt")
    started = time.perf_counter()
    out = run_reference("cp", workdir, reference, task)
    delta = out["released"].to(torch.int16) - data.images.to(torch.int16)
    exported = workdir / f"{tag}.npz"
    np.savez(exported, delta=delta.to(torch.int8).numpy(), index=data.index.numpy(), labels=data.labels.numpy())
    # their release truncates x + eps * delta in float32 (ToPILImage's mul(255).byte()): an exact -8 px step
    # can land 9 px below the clean pixel, so the images their victims saw are imported as they are
    eps_px = max(round(float(p["eps"]) * 255), int(delta.abs().max()))
    imported = import_poison(tag, exported, dataset=DATASET, scale=SCALE, eps=eps_px / 255, content="delta",
                             units="0-255", replace=True, data_root=data_root, store=store)
    levels = {int(v): round(float((delta == v).double().mean()), 5) for v in delta.unique()}
    summary = {"name": f"ext:{tag}", "attack": attack, "algorithm": algorithm, "task": task,
               "checksum": imported.poison.checksum, "released_eps_pixels": eps_px,
               "released_levels": levels, "history": out["history"],
               "seconds": round(time.perf_counter() - started, 1),  # this call (a resumed run: its remainder)
               "epoch_seconds": round(sum(e.get("seconds", 0.0) for e in out["history"]), 1),
               "reference": reference.describe()}
    write_json_atomic(workdir / "summary.json", summary)
    return summary


def reference_victim(reference: Reference, attack: str, algorithm: str = "simclr", *, seed: int = 1112,
                     data_root=None, store=None, results=None, workers: int = 0) -> dict:
    """Their victim training on our poison of `attack` (`none`: clean; `ext:NAME`: an imported one) at the
    mini width and epochs, probed by our probe; the record goes to results/parity/records/mini/."""
    from ..grids import attack_spec
    from ..jobs.poison import make_poison
    from ..jobs.victim import evaluate

    scale = get_scale(SCALE)
    data = load_split(scale, DATASET, "train", data_root=data_root, store=store)
    poison_spec = attack_spec(attack, DATASET, algorithm, SCALE)
    images, poison_info = data.images, None
    if poison_spec is not None:
        poison = make_poison(poison_spec, data_root=data_root, store=store)
        images = poison.apply(data.images, data.labels, data.index)
        poison_info = {"key": poison_spec.key, "checksum": poison.checksum, "per": poison.per}
    config = scale.train_config(algorithm, DATASET, "resnet18")
    settings = model_settings(SCALE).algorithm_settings[algorithm]
    opt = {"batch_size": config.batch_size, "epochs": config.epochs, "learning_rate": config.lr, "seed": seed,
           "weight_decay": config.weight_decay, "momentum": config.momentum,
           "warm": config.warmup_epochs > 0, "warm_epochs": config.warmup_epochs,
           "warmup_from": config.warmup_start_lr}
    if algorithm in ("simclr", "moco"):
        opt["temp"] = settings["temperature"]
    if algorithm == "moco":
        opt.update(moco_k=settings["queue_size"], moco_m=settings["momentum"], moco_dim=settings["out_dim"])
    task = {"cl_alg": CL_ALG[algorithm], "width": model_settings(SCALE).width, "opt": opt, "workers": workers,
            "gradient_share": launch_share(algorithm)}
    if algorithm == "byol":
        task["byol"] = {k: settings[k] for k in ("hidden_dim", "out_dim", "momentum")}
    tag = f"victim-{algorithm}-{attack.replace(':', '_').replace('@', '_')}-{seed}"
    workdir = workdir_for(tag, store)
    workdir.mkdir(parents=True, exist_ok=True)
    torch.save({"images": images, "labels": data.labels}, workdir / "inputs.pt")
    started = time.perf_counter()
    out = run_reference("victim", workdir, reference, task)
    train_s = time.perf_counter() - started
    encoder = build_encoder("resnet18", SCALE, 32)
    encoder.load_state_dict(out["encoder"])
    spec = VictimSpec(algorithm, "resnet18", DATASET, poison_spec, scale=SCALE, seed=seed)
    t_eval = time.perf_counter()
    metrics, probed = evaluate(encoder, scale, spec, EvalSpec((DATASET,)), device="cpu", data_root=data_root,
                               store=store)
    key = "ref-victim-" + spec.key
    record = {"format": RECORD_FORMAT, "kind": "parity-victim", "trained_by": "reference", "key": key,
              "scale": SCALE, "victim": spec.to_dict(), "attack": attack, "poison": poison_info,
              "data": {"train": describe(data), "probed": probed}, "reference_task": task, "metrics": metrics,
              "history": out["history"], "reference": reference.describe(),
              "timing": {"train_s": round(train_s, 1), "eval_s": round(time.perf_counter() - t_eval, 1)},
              "seed": seed, "created": now(), **environment()}
    write_json_atomic(record_path(results_root(results), SCALE, key), record)
    return record
