"""Contrastive poisoning (He, Zha & Katabi, ICLR 2023): `cp-c` (one delta per class) and `cp-s` (one per
sample, started from the CP-C poison of the same spec).

Min-min: the encoder and the perturbation both minimise the attacker's contrastive loss on augmented
poisoned images. Each outer epoch (a) trains the encoder `model_step` batches on augment(clamp(x + delta));
(b) freezes it in eval mode and, for `noise_step` batches, takes `num_steps` signed-gradient steps on delta
(`step_size` in units of eps), each through fresh kornia augmentations and, with `dual_branch`, through
MoCo v2's key branch too (BYOL's target branch only with `target_gradient`, an extension); delta stays in
the eps ball (no restarts). The encoder follows the official CP schedule: a per-epoch cosine over the CP
epochs, no warm-up (mini MoCo v2 excepted: SCALE_PER_ALGORITHM). docs/fidelity.md lists every difference
from the official code.
"""
from __future__ import annotations

import os
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Callable

import torch
from tqdm import tqdm

from victims.algorithms import Algorithm, contrastive_algorithms
from victims.augment import contrastive_augment, to_float
from victims.recipes import build_model, model_settings
from victims.train import TrainConfig, Trainer, load_checkpoint, mix_seed, save_checkpoint

from .base import Attack, AttackParamError, check_inputs, frozen, rng_devices
from .budgets import budget_table, per_algorithm_table
from .delta_store import DeltaStore
from .poison import Poison, eps_to_pixels
from .registry import register_attack
from .spec import AttackSpec

# Budgets per scale. model_step / noise_step = 0 means one whole pass over the data set (and never more).
# paper: REFERENCE.md section 2. mini: 10,000 CIFAR-10 images on 2 CPU cores, chosen from the budget curve
# (docs/evidence.md, "The budget curve"); its CP-S starts from uniform noise, not from CP-C (a departure
# listed in docs/fidelity.md). smoke: seconds on generated data.
BUDGETS: dict[str, dict[str, dict[str, Any]]] = budget_table({
    "paper": {
        "cp-c": {"epochs": 1000, "model_step": 20, "noise_step": 20, "num_steps": 1, "step_size": 0.1},
        "cp-s": {"epochs": 200, "model_step": 0, "noise_step": 0, "num_steps": 5, "step_size": 0.1,
                 "init": "cp-c"},
    },
    "mini": {
        "cp-c": {"epochs": 40, "model_step": 10, "noise_step": 10, "num_steps": 1, "step_size": 0.1},
        "cp-s": {"epochs": 30, "model_step": 0, "noise_step": 0, "num_steps": 5, "step_size": 0.1,
                 "init": "random"},
    },
    "smoke": {
        "cp-c": {"epochs": 3, "model_step": 2, "noise_step": 2, "num_steps": 1, "step_size": 0.1},
        "cp-s": {"epochs": 2, "model_step": 0, "noise_step": 0, "num_steps": 2, "step_size": 0.1,
                 "init": "cp-c"},
    },
})
# The official per-algorithm settings, at every scale (main.py): CP-S for BYOL takes 1 PGD step of 0.02;
# the SimCLR CP-S poison released is the epoch-160 checkpoint of a 200-epoch schedule (0.8 of it).
PER_ALGORITHM: dict[tuple[str, str], dict[str, Any]] = {
    ("cp-s", "byol"): {"num_steps": 1, "step_size": 0.02},
    ("cp-s", "simclr"): {"release_fraction": 0.8},
}
# A scale that departs from the official settings for one algorithm says so here, with its reason.
# mini MoCo v2: without a warm-up the narrow attacker's encoder collapses to one embedding for every image
# (docs/evidence.md, "The MoCo v2 attacker"), so its poison would be made by a constant network; a linear
# warm-up over ~120 encoder steps, as the victims' 3 epochs, keeps it learning (CP-C's epochs have 10
# encoder steps, CP-S's 39).
SCALE_PER_ALGORITHM: dict[tuple[str, str, str], dict[str, Any]] = per_algorithm_table({
    ("mini", "cp-c", "moco"): {"warmup_epochs": 12},
    ("mini", "cp-s", "moco"): {"warmup_epochs": 3},
})
# seconds between checkpoints (and one at the end); a requeued job loses at most this much work
SAVE_EVERY_S = float(os.environ.get("BENCH_CHECKPOINT_EVERY_S", 60))
# dual_branch: MoCo's key branch carries the gradient to the views (official --allow_mmt_grad).
# target_gradient: BYOL's target branch does too (an extension: the official loss detaches the target).
# gradient_precision: the dtype of the forward whose gradient is signed ("float32" official; "bfloat16"
# autocasts on CUDA). release_rounding: the released 8-bit delta, "floor" as the official loader's
# float -> PIL conversion truncates, or "nearest". warmup_epochs: a linear warm-up of the attacker's
# encoder (official: none, main.py:669).
COMMON = {"eps": 8 / 255, "dual_branch": True, "target_gradient": False, "batch_size": 0,
          "release_fraction": 1.0, "gradient_precision": "float32", "release_rounding": "floor",
          "warmup_epochs": 0}
CHOICES = {"gradient_precision": ("float32", "bfloat16"), "release_rounding": ("floor", "nearest"),
           "init": ("cp-c", "random")}


def budget(spec: AttackSpec) -> dict[str, Any]:
    """The scale's defaults for `spec` with `spec.params` over them (unknown names raise AttackParamError)."""
    if spec.scale not in BUDGETS:
        raise AttackParamError(f"{spec.attack}: no budget for scale {spec.scale!r}; scales: {sorted(BUDGETS)}")
    defaults = {**COMMON, **BUDGETS[spec.scale][spec.attack],
                **PER_ALGORITHM.get((spec.attack, spec.algorithm), {}),
                **SCALE_PER_ALGORITHM.get((spec.scale, spec.attack, spec.algorithm), {})}
    unknown = sorted(set(spec.params) - set(defaults))
    if unknown:
        raise AttackParamError(f"unknown parameter(s) {unknown} for attack {spec.attack!r}; "
                               f"valid parameters: {sorted(defaults)}")
    p = {**defaults, **spec.params}
    for name, valid in CHOICES.items():
        if name in p and p[name] not in valid:
            raise AttackParamError(f"{spec.attack}: {name} must be one of {list(valid)}, not {p[name]!r}")
    if p["target_gradient"] and spec.algorithm != "byol":
        raise AttackParamError(f"{spec.attack}: target_gradient is BYOL's (its target branch); "
                               f"use dual_branch for {spec.algorithm!r}")
    if not 0 < eps_to_pixels(p["eps"]) <= 127 or p["epochs"] < 1 or p["num_steps"] < 1 or p["step_size"] <= 0 \
            or not 0 < p["release_fraction"] <= 1 or not 0 <= p["warmup_epochs"] < p["epochs"]:
        raise AttackParamError(f"{spec.attack}: eps must be in (0, 127/255], epochs and num_steps >= 1, "
                               f"step_size > 0, release_fraction in (0, 1], warmup_epochs in [0, epochs); got {p}")
    return p


def surrogate(spec: AttackSpec, p: dict[str, Any], num_classes: int, image_side: int
              ) -> tuple[Algorithm, TrainConfig, int]:
    """The attacker's model (the scale's network for its algorithm) and its optimiser settings for CP: the
    official CP loop sets a per-epoch cosine over the CP epochs with no warm-up (`warmup_epochs` 0)."""
    model, config, size = build_model(spec.algorithm, spec.arch or "resnet18", spec.scale, num_classes,
                                      image_side, seed=spec.seed)
    if p["target_gradient"]:
        model.target_gradient = True
    batch = int(p["batch_size"]) or config.batch_size
    return model, replace(config, epochs=int(p["epochs"]), batch_size=batch, warmup_epochs=int(p["warmup_epochs"]),
                          lr_schedule="epoch"), size


class BatchStream:
    """Endless batches of sample positions: successive permutations drawn from (seed, cycle)."""

    def __init__(self, n: int, batch_size: int, seed: int, position: int = 0):
        self.n, self.batch_size, self.seed, self.position = n, batch_size, seed, position
        self.per_cycle = n // batch_size

    def next(self) -> torch.Tensor:
        cycle, step = divmod(self.position, self.per_cycle)
        order = torch.randperm(self.n, generator=torch.Generator().manual_seed(mix_seed(self.seed, cycle)))
        self.position += 1
        return order[step * self.batch_size:(step + 1) * self.batch_size]


def poisoned(clean: torch.Tensor, delta_pixels: torch.Tensor) -> torch.Tensor:
    """Float images in [0, 1]: uint8 `clean` plus a pixel-unit delta, clamped (add first, then clamp)."""
    return (to_float(clean) + delta_pixels / 255.0).clamp(0.0, 1.0)


def delta_gradient(algorithm: Algorithm, augment: torch.nn.Module, clean: torch.Tensor, delta: torch.Tensor,
                   labels: torch.Tensor | None = None, *, dual_branch: bool = True,
                   channels_last: bool = False, precision: str = "float32") -> tuple[torch.Tensor, float]:
    """d(contrastive loss)/d(delta) on one batch with two fresh views, and the loss. `delta` (pixel units)
    is per sample (B, ...) or per class (C, ...) indexed by `labels` (a class's gradients add up).
    `precision` "bfloat16" autocasts the forward on CUDA; "float32" (official) does not."""
    delta = delta.detach().requires_grad_(True)
    rows = delta if labels is None else delta[labels]
    x = poisoned(clean, rows)
    v1, v2 = augment(torch.cat([x, x])).chunk(2)  # two independent views in one call
    if channels_last:
        v1, v2 = (v.contiguous(memory_format=torch.channels_last) for v in (v1, v2))
    amp = x.device.type == "cuda" and precision == "bfloat16"
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
        loss = algorithm.pair_loss(v1, v2, dual_branch=dual_branch)
    (grad,) = torch.autograd.grad(loss, delta)
    return grad, float(loss.detach())


def cpc_spec_for(spec: AttackSpec) -> AttackSpec:
    """The CP-C poison a CP-S spec starts from: same data, algorithm, network, seed, scale, eps and branch."""
    shared = {k: v for k, v in spec.params.items() if k in ("eps", "dual_branch", "target_gradient")}
    return replace(spec, attack="cp-c", params=shared)


class ContrastivePoisoning(Attack):
    """The CP loop shared by `cp-c` and `cp-s` (see the module docstring)."""

    surrogate = "contrastive"
    extra_rows_in = ()

    def __init__(self, inputs: dict[str, Poison] | None = None):
        super().__init__(inputs)
        # a caller measuring the poison's growth (benchmark/scripts/budget_curve.py) gets the poison as it
        # would be released at these epochs: on_snapshot(epoch, poison, the history of every epoch so far)
        self.snapshot_epochs: set[int] = set()
        self.on_snapshot: Callable[[int, Poison, list[dict]], None] | None = None
        # and may stop the run early, its checkpoint saved, to release later epochs in another session
        self.stop_after: int | None = None

    defaults = {**COMMON, **BUDGETS["paper"]["cp-c"]}

    def params(self, spec: AttackSpec) -> dict[str, Any]:
        return budget(spec)

    def generate(self, spec: AttackSpec, images: torch.Tensor, labels: torch.Tensor, index: torch.Tensor, *,
                 device: torch.device | str = "cpu", workdir: str | os.PathLike | None = None,
                 progress: bool = True) -> Poison:
        check_inputs(images, labels, index)
        if spec.algorithm not in contrastive_algorithms():
            raise AttackParamError(f"{spec.attack}: the attacker's algorithm must be one of "
                                   f"{contrastive_algorithms()}, not {spec.algorithm!r}")
        p = self.params(spec)
        device = torch.device(device)
        num_classes = int(labels.max()) + 1
        model, config, size = surrogate(spec, p, num_classes, images.shape[-1])
        batch = config.batch_size
        if len(images) < batch:
            raise AttackParamError(f"{spec.attack}: {len(images)} images are fewer than one batch of {batch}")
        per_pass = len(images) // batch
        # a turn is at most one pass (a small data set, e.g. the mini Imagenette, is not cycled through twice)
        model_step, noise_step = (min(int(p[k]) or per_pass, per_pass) for k in ("model_step", "noise_step"))
        epochs = config.epochs
        release = max(1, round(epochs * p["release_fraction"]))  # released early (SimCLR CP-S: 160 of 200)
        augment = contrastive_augment(size, spec.dataset).to(device)
        trainer = Trainer(model, config, augment, device, steps_per_epoch=model_step)

        eps_px = eps_to_pixels(p["eps"])
        rows = num_classes if self.per == "class" else len(images)
        store = DeltaStore(rows, tuple(images.shape[1:]), eps_px, p["step_size"] * eps_px, device)
        data = images.to(device) if device.type == "cpu" or images.numel() < 8 * 2**30 else images
        targets = labels.to(device)
        model_stream = BatchStream(len(images), batch, mix_seed(spec.seed, 1))
        noise_stream = BatchStream(len(images), batch, mix_seed(spec.seed, 2))
        state_path = Path(workdir) / "state.pt" if workdir else None
        state = load_checkpoint(state_path) if state_path else None
        history: list[dict] = []
        start = 0
        self.report = {"resumed_from_epoch": 0}
        if state is not None and state.get("key") == spec.key:
            trainer.load_state_dict(state["trainer"])
            store.units.copy_(state["units"].to(device))
            model_stream.position, noise_stream.position = state["model_position"], state["noise_position"]
            history, start = list(state["history"]), int(state["epoch"])
            self.report["resumed_from_epoch"] = start
            if progress:
                print(f"{spec.attack}: resumed from the checkpoint of epoch {start} ({state_path})")
        else:
            self.initialise(spec, p, store, labels, index)

        end = release if self.stop_after is None else max(start, min(release, self.stop_after))
        bar = tqdm(range(start, end), initial=start, total=release, unit="epoch", dynamic_ncols=True,
                   desc=f"{spec.attack} {spec.algorithm}", disable=not progress)
        last_save = time.monotonic()
        for epoch in bar:
            t0 = time.perf_counter()
            model_losses = []
            for _ in range(model_step):  # (a) the encoder's turn
                ids = model_stream.next().to(device)
                x = poisoned(data[ids.to(data.device)].to(device), self.rows(store, ids, targets[ids]))
                model_losses.append(trainer.train_step(x, targets[ids]))
            noise_losses, t_noise = [], time.perf_counter()
            with frozen(model):  # (b) the perturbation's turn
                for b in range(noise_step):
                    ids = noise_stream.next().to(device)
                    clean, y = data[ids.to(data.device)].to(device), targets[ids]
                    for s in range(int(p["num_steps"])):
                        with torch.random.fork_rng(devices=rng_devices(device)):
                            torch.manual_seed(mix_seed(spec.seed, 3, epoch, b, s))
                            loss = self.perturbation_step(model, augment, store, clean, ids, y, p,
                                                          config.channels_last)
                        noise_losses.append(loss)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            noise_s = time.perf_counter() - t_noise
            entry = {"epoch": epoch + 1, "model_loss": sum(model_losses) / len(model_losses),
                     "noise_loss": sum(noise_losses) / len(noise_losses),
                     "lr": trainer.optimizer.param_groups[0]["lr"], "seconds": time.perf_counter() - t0,
                     "noise_seconds": noise_s, "noise_images_per_s": noise_step * batch * int(p["num_steps"]) / noise_s}
            history.append(entry)
            bar.set_postfix(model=f"{entry['model_loss']:.3f}", noise=f"{entry['noise_loss']:.3f}")
            if self.on_snapshot is not None and epoch + 1 in self.snapshot_epochs:
                self.on_snapshot(epoch + 1, self.released(store, p, spec, index), history)
            done = epoch + 1 == end
            if state_path and (done or time.monotonic() - last_save >= SAVE_EVERY_S):
                save_checkpoint(state_path, {"key": spec.key, "epoch": epoch + 1, "trainer": trainer.state_dict(),
                                             "units": store.units.cpu(), "model_position": model_stream.position,
                                             "noise_position": noise_stream.position, "history": history})
                last_save = time.monotonic()
        bar.close()
        self.history, self.working_bytes = history, store.nbytes
        self.report.update(epochs=end, history=history, working_delta_bytes=store.nbytes)
        return self.released(store, p, spec, index)

    def released(self, store: DeltaStore, p: dict[str, Any], spec: AttackSpec, index: torch.Tensor) -> Poison:
        """The poison as released now: the working delta rounded to 8-bit pixels (`release_rounding`)."""
        released = store.release()
        if p["release_rounding"] == "floor":
            released = released.floor()
        return Poison.create(released, self.per, float(p["eps"]), spec, None if self.per == "class" else index)

    def surrogate_settings(self, spec: AttackSpec) -> dict[str, Any]:
        p = self.params(spec)
        model, config, _ = surrogate(spec, p, 10, 32)
        return {"algorithm": model_settings(spec.scale).algorithm_settings.get(spec.algorithm, {}),
                "train": asdict(config)}

    def rows(self, store: DeltaStore, ids: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return store.pixels(y if self.per == "class" else ids)

    def perturbation_step(self, model: Algorithm, augment: torch.nn.Module, store: DeltaStore, clean: torch.Tensor,
                          ids: torch.Tensor, y: torch.Tensor, p: dict[str, Any], channels_last: bool) -> float:
        """One signed-gradient step on the rows of this batch (per class: every class's summed gradient)."""
        options = {"dual_branch": p["dual_branch"], "precision": p["gradient_precision"],
                   "channels_last": channels_last}
        if self.per == "class":
            grad, loss = delta_gradient(model, augment, clean, store.pixels(), y, **options)
            store.step(None, grad)
        else:
            grad, loss = delta_gradient(model, augment, clean, store.pixels(ids), **options)
            store.step(ids, grad)
        return loss

    def initialise(self, spec: AttackSpec, p: dict, store: DeltaStore, labels: torch.Tensor,
                   index: torch.Tensor) -> None:
        """U[-eps, eps] from the seed (CP-C, and CP-S with init='random')."""
        store.fill_uniform(torch.Generator().manual_seed(mix_seed(spec.seed, 0)))


@register_attack("cp-c")
class ClassWiseCP(ContrastivePoisoning):
    per = "class"
    gpu_hours = 6.0


@register_attack("cp-s")
class SampleWiseCP(ContrastivePoisoning):
    per = "sample"
    gpu_hours = 10.0
    defaults = {**COMMON, **BUDGETS["paper"]["cp-s"]}

    def requires(self, spec: AttackSpec) -> list[AttackSpec]:
        return [cpc_spec_for(spec)] if self.params(spec)["init"] == "cp-c" else []

    def initialise(self, spec: AttackSpec, p: dict, store: DeltaStore, labels: torch.Tensor,
                   index: torch.Tensor) -> None:
        """Each sample starts from its class's delta of the CP-C poison (or uniformly, init='random')."""
        if p["init"] == "random":
            return super().initialise(spec, p, store, labels, index)
        cpc = self.inputs[cpc_spec_for(spec).key]
        if cpc.per != "class" or cpc.delta.shape[1:] != store.units.shape[1:]:
            raise AttackParamError(f"cp-s: the CP-C poison to start from has shape {tuple(cpc.delta.shape)}")
        store.fill_pixels(cpc.delta[labels].to(store.units.device))
