"""Unlearnable examples (Huang et al., ICLR 2021): error-MINIMISING noise found by min-min against a
supervised surrogate (the scale's supervised network, SGD at a constant lr, no augmentation).

- `ue-s` (one delta per sample, started at zero): each round trains the surrogate `train_steps` batches on
  clamp(x + delta), then takes `pgd_steps` signed steps of `step_size` on every sample, lowering the
  cross-entropy of its true label, projected to the eps ball and the image range; it stops when the
  surrogate's error on the poisoned data falls below `stop_error` (or after `max_rounds`).
- `ue-c` (one delta per class, started at zero as the official command does): each round trains the
  surrogate `train_steps` batches of the whole data set, then sweeps a class-balanced `subset` once, each
  batch taking one step per sample and adding the mean of its samples' signed steps to their class's delta;
  it stops when the surrogate's error on the poisoned subset falls below `stop_error` (the official README's
  0.1).

As the official code: no augmentation while crafting, the surrogate sees [0, 1] pixels without
normalisation (`normalize_input` False), its gradient norm is clipped at `grad_clip` 5.0, and its learning
rate stays constant. docs/fidelity.md lists what differs from the official code.
The released noise is added first and the image clamped after (REFERENCE's pitfall: the official loader
clamped the noise before adding it). Helpers shared with `adversarial.py` live here too.
"""
from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
import torch.nn.functional as F
from tqdm import tqdm

from victims.algorithms import Algorithm
from victims.augment import eval_transform, to_float
from victims.recipes import build_model
from victims.train import TrainConfig, Trainer, load_checkpoint, mix_seed, save_checkpoint

from .base import Attack, AttackParamError, check_inputs, frozen, params, rng_devices
from .budgets import budget_table
from .poison import Poison, eps_to_pixels
from .registry import register_attack
from .spec import AttackSpec

STATE_FILE = "state.pt"  # the crafting progress under the workdir

# Budgets per scale, merged under spec.params. paper: the official commands (max_rounds is only a safety cap
# there). mini: 10,000 CIFAR-10 images on a 2-core CPU, the official steps (10 training batches of 512 and 20
# PGD steps per round); a cap of 10 rounds. smoke: seconds on the synthetic data.
_UE = {"eps": 8 / 255, "step_size": 0.8 / 255, "train_steps": 10, "batch_size": 512, "lr": 0.1, "grad_clip": 5.0,
       "normalize_input": False}
BUDGETS: dict[str, dict[str, dict[str, Any]]] = budget_table({
    "paper": {
        "ue-s": {**_UE, "pgd_steps": 20, "stop_error": 0.01, "max_rounds": 100},
        "ue-c": {**_UE, "pgd_steps": 1, "stop_error": 0.1, "max_rounds": 100, "subset": 0.2},
    },
    "mini": {
        "ue-s": {**_UE, "pgd_steps": 20, "stop_error": 0.01, "max_rounds": 10},
        "ue-c": {**_UE, "pgd_steps": 1, "stop_error": 0.1, "max_rounds": 100, "subset": 0.2},
    },
    "smoke": {
        "ue-s": {**_UE, "batch_size": 64, "pgd_steps": 5, "stop_error": 0.01, "max_rounds": 2},
        "ue-c": {**_UE, "batch_size": 64, "pgd_steps": 1, "stop_error": 0.1, "max_rounds": 2, "subset": 0.5},
    },
})
assert all(set(b) == set(BUDGETS["paper"][a]) for budgets in BUDGETS.values() for a, b in budgets.items())
INTS = ("pgd_steps", "train_steps", "batch_size", "max_rounds", "restarts", "surrogate_epochs")


# ---------------------------------------------------------------------------------------------- helpers


def scaled_params(spec: AttackSpec, budgets: dict[str, dict[str, dict[str, Any]]],
                  ints: tuple[str, ...] = INTS) -> dict[str, Any]:
    """The budget of `spec.attack` at `spec.scale` with `spec.params` over it; unknown names (or an unknown
    scale) raise AttackParamError listing the valid ones; checks the values' ranges (`ints`: the parameters
    that must be positive integers)."""
    if spec.scale not in budgets:
        raise AttackParamError(f"{spec.attack}: no budget for scale {spec.scale!r}; scales: {sorted(budgets)}")
    p = params(spec, budgets[spec.scale][spec.attack])
    if spec.algorithm not in (None, "supervised"):
        raise AttackParamError(f"{spec.attack}: the surrogate is supervised, not {spec.algorithm!r}")
    for name in ints:
        if name in p:
            if int(p[name]) != p[name] or p[name] < 1:
                raise AttackParamError(f"{spec.attack}: {name} must be a positive integer, got {p[name]!r}")
            p[name] = int(p[name])
    if not 0 < eps_to_pixels(p["eps"]) <= 127 or p["step_size"] <= 0:
        raise AttackParamError(f"{spec.attack}: eps must be in (0, 127/255] and step_size > 0, got "
                               f"eps={p['eps']}, step_size={p['step_size']}")
    if not 0 < p.get("subset", 1) <= 1:
        raise AttackParamError(f"{spec.attack}: subset must be in (0, 1], got {p['subset']}")
    return p


def build_surrogate(spec: AttackSpec, num_classes: int, image_side: int) -> tuple[Algorithm, TrainConfig, int]:
    """The scale's supervised network on `spec.arch` (ResNet-18 by default), weights drawn from spec.seed."""
    return build_model("supervised", spec.arch or "resnet18", spec.scale, num_classes, image_side=image_side,
                       seed=spec.seed)


def logits_fn(model: Algorithm, config: TrainConfig, device: torch.device) -> Callable[[torch.Tensor], torch.Tensor]:
    """float32 logits of a batch of normalised views (channels_last and bfloat16 autocast as in training)."""
    amp = config.amp and device.type == "cuda"

    def logits(views: torch.Tensor) -> torch.Tensor:
        if config.channels_last:
            views = views.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
            return model.logits(views).float()

    return logits


def state_path(workdir: str | os.PathLike | None) -> Path | None:
    return None if workdir is None else Path(workdir) / STATE_FILE


def load_state(path: Path | None, spec: AttackSpec, n: int) -> dict | None:
    """The saved progress of this spec on `n` rows, or None (none saved, or another spec's)."""
    state = load_checkpoint(path) if path is not None else None
    if state is None or state.get("key") != spec.key or int(state.get("rows", -1)) != n:
        return None
    return state


def batches(n: int, size: int) -> Iterator[slice]:
    for s in range(0, n, size):
        yield slice(s, min(n, s + size))


def epoch_batch(n: int, size: int, step: int, seed: int) -> torch.Tensor:
    """Positions of training batch `step` in an endless sequence of seeded epoch permutations."""
    per_epoch = max(1, n // size)
    epoch, k = divmod(step, per_epoch)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(mix_seed(seed, epoch)))
    return order[k * size:(k + 1) * size]


def balanced_subset(labels: torch.Tensor, fraction: float, seed: int) -> torch.Tensor:
    """Sorted positions of a random `fraction` of each class (at least one sample per class present)."""
    labels = labels.cpu()
    perm = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    order = perm[torch.sort(labels[perm], stable=True).indices]  # grouped by class, random within a class
    counts = torch.bincount(labels)
    starts = torch.cumsum(counts, 0) - counts
    sorted_labels = labels[order]
    rank = torch.arange(len(labels)) - starts[sorted_labels]
    keep = (counts.float() * fraction).round().clamp(min=1).long()
    return order[rank < keep[sorted_labels]].sort().values


# ------------------------------------------------------------------------------------------- min-min


class _MinMin:
    """The surrogate being trained (constant lr, no augmentation) and the error-minimising steps."""

    def __init__(self, spec: AttackSpec, p: dict[str, Any], num_classes: int, image_side: int,
                 device: torch.device, rows: int, progress: bool = False):
        model, config, size = build_surrogate(spec, num_classes, image_side)
        config = replace(config, batch_size=p["batch_size"], lr=p["lr"], warmup_epochs=0, final_lr_ratio=1.0,
                         grad_clip=p["grad_clip"])
        self.normalize = eval_transform(size, spec.dataset if p["normalize_input"] else "raw").to(device)
        self.trainer = Trainer(model, config, self.normalize, device,
                               steps_per_epoch=max(1, rows // p["batch_size"]))
        self.model, self.device, self.p, self.seed, self.progress = model, device, p, spec.seed, progress
        self.logits = logits_fn(model, config, device)

    def train(self, images: torch.Tensor, labels: torch.Tensor, delta_of: Callable[[torch.Tensor], torch.Tensor]):
        """`train_steps` SGD steps on clamp(x + delta) of seeded batches; returns the mean loss."""
        losses = []
        for _ in range(self.p["train_steps"]):
            ids = epoch_batch(len(labels), self.p["batch_size"], self.trainer.step_count, self.seed).to(self.device)
            x = (to_float(images[ids]) + delta_of(ids)).clamp_(0, 1)
            losses.append(self.trainer.train_step(x, labels[ids]))
        return sum(losses) / len(losses)

    def input_grad(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Gradient of the summed cross-entropy of labels `y` w.r.t. the images `x` (model frozen), and
        the mean cross-entropy (detached)."""
        x = x.detach().requires_grad_(True)
        loss = F.cross_entropy(self.logits(self.normalize(x)), y, reduction="sum")
        return torch.autograd.grad(loss, x)[0], loss.detach() / len(y)

    def sweep_bar(self, total: int) -> tqdm:
        return tqdm(total=total, desc="  error-minimising steps", unit="img", leave=False,
                    disable=not self.progress, dynamic_ncols=True)

    @torch.no_grad()
    def error(self, images: torch.Tensor, labels: torch.Tensor,
              delta_of: Callable[[torch.Tensor], torch.Tensor]) -> tuple[float, float]:
        """(error rate, mean cross-entropy) of the frozen surrogate on clamp(x + delta)."""
        wrong, loss = 0, 0.0
        with frozen(self.model):
            for part in batches(len(labels), self.p["batch_size"]):
                ids = torch.arange(part.start, part.stop, device=self.device)
                out = self.logits(self.normalize((to_float(images[ids]) + delta_of(ids)).clamp_(0, 1)))
                wrong += int((out.argmax(1) != labels[ids]).sum())
                loss += float(F.cross_entropy(out, labels[ids], reduction="sum"))
        return wrong / len(labels), loss / len(labels)


class _UnlearnableBase(Attack):
    """Shared driver: rounds of (train, perturb, evaluate) with a checkpoint after every round."""

    surrogate = "supervised"
    extra_rows_in = ()

    def params(self, spec: AttackSpec) -> dict[str, Any]:
        return scaled_params(spec, BUDGETS)

    def initial_delta(self, spec: AttackSpec, p: dict, shape: tuple[int, ...]) -> torch.Tensor:
        raise NotImplementedError

    def perturb(self, mm: _MinMin, images: torch.Tensor, labels: torch.Tensor, delta: torch.Tensor) -> None:
        """One sweep of error-minimising steps, updating `delta` in place."""
        raise NotImplementedError

    def delta_of(self, delta: torch.Tensor, labels: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        raise NotImplementedError

    def craft_data(self, spec: AttackSpec, p: dict, images: torch.Tensor, labels: torch.Tensor):
        """The images and labels the noise is optimised and the stop rule evaluated on (all by default);
        the surrogate always trains on the whole data set."""
        return images, labels

    def generate(self, spec: AttackSpec, images: torch.Tensor, labels: torch.Tensor, index: torch.Tensor, *,
                 device: torch.device | str = "cpu", workdir: str | os.PathLike | None = None,
                 progress: bool = True) -> Poison:
        check_inputs(images, labels, index)
        p, device = self.params(spec), torch.device(device)
        num_classes = int(labels.max()) + 1
        with torch.random.fork_rng(devices=rng_devices(device)):
            torch.manual_seed(spec.seed)
            delta = self._craft(spec, p, images, labels, num_classes, device, state_path(workdir), progress)
        index = index if self.per == "sample" else None
        return Poison.create(delta.cpu() * 255, self.per, p["eps"], spec, index)

    def _craft(self, spec: AttackSpec, p: dict, images: torch.Tensor, labels: torch.Tensor, num_classes: int,
               device: torch.device, path: Path | None, progress: bool) -> torch.Tensor:
        x_all, y_all = images.to(device), labels.to(device)
        x_craft, y_craft = (t.to(device) for t in self.craft_data(spec, p, images, labels))
        mm = _MinMin(spec, p, num_classes, images.shape[-1], device, len(y_all), progress)
        rows = len(images) if self.per == "sample" else num_classes
        state = load_state(path, spec, rows)
        if state is None:
            delta = self.initial_delta(spec, p, (rows, *images.shape[1:])).to(device)
            state = {"key": spec.key, "rows": rows, "round": 0, "done": False, "history": []}
        else:
            mm.trainer.load_state_dict(state["trainer"])
            delta = state["delta"].to(device)
        bar = tqdm(total=p["max_rounds"], initial=state["round"], desc=self.name, unit="round",
                   disable=not progress, dynamic_ncols=True)
        while not state["done"] and state["round"] < p["max_rounds"]:
            train_loss = mm.train(x_all, y_all, self.delta_of(delta, y_all))
            with frozen(mm.model):
                self.perturb(mm, x_craft, y_craft, delta)
            error, loss = mm.error(x_craft, y_craft, self.delta_of(delta, y_craft))
            state["round"] += 1
            state["done"] = error < p["stop_error"]
            state["history"].append({"round": state["round"], "train_loss": train_loss, "error": error,
                                     "loss": loss})
            bar.update(1)
            bar.set_postfix(error=f"{error:.3f}", loss=f"{loss:.4f}")
            if path is not None:
                save_checkpoint(path, {**state, "delta": delta.cpu(), "trainer": mm.trainer.state_dict()})
        bar.close()
        return delta


@register_attack("ue-s")
class UnlearnableSamplewise(_UnlearnableBase):
    """Sample-wise error-minimising noise: zero start, `pgd_steps` steps per sample per round."""

    per = "sample"
    gpu_hours = 2.0
    defaults = BUDGETS["paper"]["ue-s"]

    def initial_delta(self, spec: AttackSpec, p: dict, shape: tuple[int, ...]) -> torch.Tensor:
        return torch.zeros(shape)

    def delta_of(self, delta: torch.Tensor, labels: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        return lambda ids: delta[ids]

    def perturb(self, mm: _MinMin, images: torch.Tensor, labels: torch.Tensor, delta: torch.Tensor) -> None:
        eps, step = mm.p["eps"], mm.p["step_size"]
        with mm.sweep_bar(len(labels)) as bar:
            for part in batches(len(labels), mm.p["batch_size"]):
                x, y, d = to_float(images[part]), labels[part], delta[part]
                for _ in range(mm.p["pgd_steps"]):
                    g, loss = mm.input_grad(x + d, y)  # x + d stays in [0, 1] (projected below)
                    d = (d - step * g.sign()).clamp_(-eps, eps)
                    d = (x + d).clamp_(0, 1) - x
                delta[part] = d
                bar.update(part.stop - part.start)
                bar.set_postfix(loss=f"{float(loss):.4f}")


@register_attack("ue-c")
class UnlearnableClasswise(_UnlearnableBase):
    """Class-wise error-minimising noise: zero start, one step per batch of a class-balanced subset,
    each class's delta moved by the mean of its samples' signed steps."""

    per = "class"
    gpu_hours = 1.0
    defaults = BUDGETS["paper"]["ue-c"]

    def craft_data(self, spec: AttackSpec, p: dict, images: torch.Tensor, labels: torch.Tensor):
        keep = balanced_subset(labels, p["subset"], mix_seed(spec.seed, 1))
        return images[keep], labels[keep]

    def initial_delta(self, spec: AttackSpec, p: dict, shape: tuple[int, ...]) -> torch.Tensor:
        return torch.zeros(shape)

    def delta_of(self, delta: torch.Tensor, labels: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        return lambda ids: delta[labels[ids]]

    def perturb(self, mm: _MinMin, images: torch.Tensor, labels: torch.Tensor, delta: torch.Tensor) -> None:
        eps, step, c = mm.p["eps"], mm.p["step_size"], len(delta)
        n, size = len(labels), mm.p["batch_size"]
        seed = mix_seed(mm.seed, 3, mm.trainer.step_count)  # a fresh order each round
        with mm.sweep_bar(n) as bar:
            for k in range(max(1, n // size)):  # one sweep of the subset in seeded batches
                ids = epoch_batch(n, size, k, seed).to(mm.device)
                x, y = to_float(images[ids]), labels[ids]
                for _ in range(mm.p["pgd_steps"]):
                    g, loss = mm.input_grad((x + delta[y]).clamp(0, 1), y)
                    total = torch.zeros_like(delta).index_add_(0, y, -step * g.sign())
                    count = torch.bincount(y, minlength=c).to(delta.dtype).view(c, 1, 1, 1)
                    delta.add_(total / count.clamp(min=1)).clamp_(-eps, eps)
                bar.update(len(ids))
                bar.set_postfix(loss=f"{float(loss):.4f}")

