"""One victim run: load the (poisoned) data, train the algorithm, probe the frozen encoder, write a record."""
from __future__ import annotations

import json
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch
from tabulate import tabulate

from victims.augment import eval_transform
from victims.distributed import default_device, init_from_env, rank
from victims.probe import classifier_accuracy, extract_features, knn_accuracy, linear_probe
from victims.recipes import build_encoder, build_model
from victims.train import TrainConfig, fit, outcome_settings

from attacks import Poison, PoisonError

from ..grids import attack_spec
from ..paths import store_root
from ..records import RECORD_FORMAT, environment, now, record_path, results_root, write_json_atomic
from ..scales import Scale, get_scale
from ..specs import CONTROL, DefenseSpec, EvalSpec, VictimSpec
from .poison import make_poison
from .defended import defended_images, partial, training_hook
from .defended import resolve as resolve_defense
from .poison_store import load_poison, made_with, poison_path, poison_report
from .splits import describe, load_split


def evaluate(encoder: torch.nn.Module, scale: Scale, spec: VictimSpec, eval_spec: EvalSpec, *, device,
             data_root=None, store=None, progress: bool = True) -> tuple[dict, dict]:
    """Linear probe and kNN of the frozen encoder on every data set of `eval_spec` (clean splits)."""
    metrics, data_used = {}, {}
    input_size = scale.source(spec.dataset).input_size
    for name in eval_spec.datasets:
        train = load_split(scale, name, "train", data_root=data_root, store=store)
        test = load_split(scale, name, "test", data_root=data_root, store=store)
        probe = linear_probe(encoder, train.images, train.labels, test.images, test.labels,
                             num_classes=train.num_classes, input_size=input_size, normalization=spec.dataset,
                             config=scale.probe, device=device, progress=progress)
        transform = eval_transform(input_size, spec.dataset).to(device)
        knn = knn_accuracy(extract_features(encoder, train.images, transform, device), train.labels,
                           extract_features(encoder, test.images, transform, device), test.labels,
                           train.num_classes, k=scale.knn_k)
        metrics[name] = {"probe_best": probe.best_accuracy, "probe_final": probe.final_accuracy, "knn": knn,
                         "probe_history": [round(a, 2) for a in probe.history]}
        data_used[name] = {"train": describe(train), "test": describe(test),
                           "stands_for": scale.describe_data(name)}
    return metrics, data_used


def victim_train_config(spec: VictimSpec) -> TrainConfig:
    """The scale's training settings for this victim, with the victim's seed."""
    config = get_scale(spec.scale).train_config(spec.algorithm, spec.dataset, spec.arch)
    return replace(config, seed=spec.seed)


def victim_settings(spec: VictimSpec) -> dict:
    """Every setting of the scale that a victim's record depends on, as its record stores them (JSON)."""
    scale = get_scale(spec.scale)
    settings: dict = {"width": scale.width, "input_size": scale.source(spec.dataset).input_size,
                      "probe": asdict(scale.probe), "knn_k": scale.knn_k}
    if spec.algorithm != CONTROL:
        settings.update(train=asdict(victim_train_config(spec)),
                        algorithm=scale.algorithm_settings.get(spec.algorithm, {}))
        defense = resolve_defense(spec)
        if defense is not None:  # the parameters it ran with (its scale's defaults included)
            settings["defense"] = defense[1]
    return json.loads(json.dumps(settings))


def same_settings(recorded: dict, expected: dict) -> bool:
    """A record's settings equal the expected ones, but for those that change no trained weight."""
    def outcome(settings: dict) -> dict:
        return {**settings, "train": outcome_settings(settings["train"])} if "train" in settings else settings
    return outcome(recorded) == outcome(expected)


def victim_checkpoint(key: str, poison_checksum: str | None = None, store=None) -> Path:
    """Where a victim's training checkpoint lives. The poison's checksum is in the name: a poison made again
    (a new budget, new code) restarts its victims' training instead of resuming from the old poison's."""
    tag = f"-{poison_checksum[:12]}" if poison_checksum else ""
    return store_root(store) / "checkpoints" / "victims" / f"{key[:20]}{tag}.pt"


def stored_poison(spec: VictimSpec, store=None) -> Poison:
    """The stored, verified poison a victim trains on; PoisonError (saying how to make it) when it is not made."""
    assert spec.poison is not None
    poison = load_poison(spec.poison, store)
    if poison is None:
        raise PoisonError(f"the poison {spec.poison.attack} ({spec.poison.key[:12]}) that this victim trains on is "
                          f"not in the store {store_root(store)} (or is out of date): make it first "
                          "(`bench run` makes it as its own job; in Python, benchmark.jobs.poison.make_poison) "
                          "and pass it to run_victim")
    return poison


def run_victim(spec: VictimSpec, eval_spec: EvalSpec | None = None, *, poison: Poison | None = None,
               data_root=None, store=None, results=None, device: torch.device | str | None = None,
               progress: bool = True) -> dict:
    """Train (unless it is the `untrained` control) and evaluate one victim; write and return its record.

    A poisoned victim trains on `poison` (made by its own poison job), else on the stored poison of its
    spec; it never makes one. Training checkpoints under `<store>/checkpoints/victims/` and resumes there.
    """
    started, provenance = time.perf_counter(), environment()  # the code that runs, not what is there at the end
    eval_spec = eval_spec or EvalSpec((spec.dataset,))
    scale, device = get_scale(spec.scale), torch.device(device) if device else default_device()
    source = scale.source(spec.dataset)
    train = load_split(scale, spec.dataset, "train", data_root=data_root, store=store)
    perturbation, poison_info = None, None
    if spec.poison is not None and not spec.poison.is_clean:
        poison = poison if poison is not None else stored_poison(spec, store)
        if poison.spec_key != spec.poison.key:
            raise PoisonError(f"run_victim was given the poison of {poison.spec.get('attack')}, not the one its "
                              f"spec names ({spec.poison.attack}, {spec.poison.key[:12]})")
        perturbation = partial(poison.perturbation_for(train.index), spec, train)
        poison_info = {"key": spec.poison.key, "checksum": poison.checksum, "per": poison.per,
                       "eps": poison.eps, "file": poison_path(spec.poison, store).name}
        if spec.poison_ratio != 1:
            poison_info.update(ratio=spec.poison_ratio, poisoned_images=int(perturbation.mask.sum()))
        report = poison_report(spec.poison, store) or {}
        poison_info.update(made_with(spec.poison, store))  # a reader can tell a poison of another budget
        if report.get("external"):  # an imported poison: the record keeps which file it came from
            poison_info.update(external=True, source_sha256=report.get("source", {}).get("sha256"))
    settings = victim_settings(spec)  # first: an unknown algorithm's error names add_recipe
    history, resumed, train_s = [], 0, 0.0
    images, view_hook, defense_info = train.images, None, None
    defense = resolve_defense(spec)
    if defense is not None and spec.algorithm != CONTROL:
        if defense[0].acts_on == "data":  # the released images transformed once (cached); trained on as they are
            images, defense_info = defended_images(spec, *defense, train, perturbation,
                                                   poison_info and poison_info["checksum"], store=store,
                                                   progress=progress)
            perturbation = None
        else:
            view_hook, defense_info = training_hook(spec, *defense)
    algorithm = None
    torch.manual_seed(spec.seed)  # the weights are drawn from the global RNG, seeded here (as records were made)
    if spec.algorithm == CONTROL:
        encoder = build_encoder(spec.arch, spec.scale, source.input_size)
    else:
        algorithm, _, _ = build_model(spec.algorithm, spec.arch, spec.scale, train.num_classes,
                                      input_size=source.input_size)
        encoder = algorithm.encoder
        config = victim_train_config(spec)  # the scale's, with its data set's and architecture's epochs
        augment = type(algorithm).augmentation(source.input_size, spec.dataset)  # its recipe's views
        checkpoint = victim_checkpoint(spec.key, poison_info and poison_info["checksum"], store)
        result = fit(algorithm, images, train.labels, config, augment, device=device,
                     perturbation=perturbation, checkpoint=checkpoint, progress=progress, view_hook=view_hook)
        history, resumed, train_s = result.history, result.resumed_from_epoch, result.wall_s
        encoder = algorithm.encoder
    if rank() != 0:
        return {}
    t_eval = time.perf_counter()
    metrics, data_used = evaluate(encoder, scale, spec, eval_spec, device=device, data_root=data_root,
                                  store=store, progress=progress)
    if spec.algorithm == "supervised":
        test = load_split(scale, spec.dataset, "test", data_root=data_root, store=store)
        metrics[spec.dataset]["test_accuracy"] = classifier_accuracy(
            algorithm, test.images, test.labels, input_size=source.input_size, normalization=spec.dataset,
            device=device)
    record = {"format": RECORD_FORMAT, "kind": "victim", "key": spec.key, "scale": spec.scale,
              "victim": spec.to_dict(), "attack": spec.attack, "poison": poison_info,
              **({"defense": defense_info} if defense_info else {}),
              "eval": list(eval_spec.datasets),
              "data": {"train": describe(train), "stands_for": scale.describe_data(spec.dataset),
                       "probed": data_used},
              "settings": settings, "metrics": metrics,
              "history": [{k: round(v, 5) if isinstance(v, float) else v for k, v in h.items()} for h in history],
              "resumed_from_epoch": resumed,
              "timing": {"train_s": round(train_s, 1), "eval_s": round(time.perf_counter() - t_eval, 1),
                         "total_s": round(time.perf_counter() - started, 1)},
              "device": str(device), "seed": spec.seed, "created": now(), **provenance}
    record = json.loads(json.dumps(record))  # exactly what a reader of the file gets (tuples become lists)
    write_json_atomic(record_path(results_root(results), spec.scale, spec.key), record)
    return record


def victim_spec(algorithm: str, arch: str, dataset: str, *, attack: str = "none", scale: str = "smoke",
                seed: int = 1112, defense: DefenseSpec | None = None, poison_ratio: float = 1.0) -> VictimSpec:
    """The victim `bench victim` names: on the poison of `attack` (made with ResNet-18 as in the paper), on a
    `poison_ratio` share of the data, with `defense` (ValueError for anything invalid)."""
    return VictimSpec(algorithm, arch, dataset, attack_spec(attack, dataset, algorithm, scale), scale=scale,
                      seed=seed, defense=defense, poison_ratio=poison_ratio)


def victim_command(spec: VictimSpec, *, eval_datasets: list[str] | None = None, data_root=None, store=None,
                   results=None, device=None) -> int:
    """`bench victim`: train and evaluate one victim (its poison made, or reused when stored), write its
    record, print its metrics (on rank 0)."""
    init_from_env()  # several processes when launched by torchrun (or submitit with --gpus-per-job)
    poison, defense = spec.poison, spec.defense
    eval_spec = EvalSpec(tuple(eval_datasets or [spec.dataset]))
    made = make_poison(poison, data_root=data_root, store=store, device=device) \
        if poison is not None and not poison.is_clean else None
    record = run_victim(spec, eval_spec, poison=made, data_root=data_root, store=store, results=results,
                        device=device)
    if rank() != 0:
        return 0
    rows = [[name, f"{m['probe_best']:.2f}", f"{m['probe_final']:.2f}", f"{m['knn']:.2f}",
             f"{m['test_accuracy']:.2f}" if "test_accuracy" in m else "-"] for name, m in record["metrics"].items()]
    extra = "".join([f", {spec.poison_ratio:g} of it poisoned" if spec.poison_ratio != 1 else "",
                     f", defense {defense.label}" if defense is not None and not defense.is_none else ""])
    print(f"{spec.algorithm} / {spec.arch} on {record['data']['train']}{extra} [{spec.scale}]; "
          f"train {record['timing']['train_s']} s, total {record['timing']['total_s']} s")
    print(tabulate(rows, headers=["probed", "probe best", "probe final", "kNN", "test acc"]))
    return 0
