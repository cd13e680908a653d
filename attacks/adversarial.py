"""Adversarial poisoning (Fowl et al., NeurIPS 2021): train a supervised surrogate on the clean data (the
scale's supervised recipe, crop + flip, for `surrogate_epochs`), then attack every image with PGD in the
eps ball: `pgd_steps` signed steps of `step_size` * eps through fresh differentiable crops and flips
(kornia), from `restarts` random starts, keeping per sample the start whose 8-bit result has the lowest
loss (measured without augmentation).

- `ap-t` (targeted, the stronger recipe): minimise the cross-entropy toward class (y + 1) mod C.
- `ap-u` (untargeted): maximise the cross-entropy of the true label y.

The surrogate is checkpointed by `victims.train.fit` and the 8-bit deltas after every batch, so a rerun
with the same workdir resumes where it stopped.
"""
from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from tqdm import tqdm

from victims.augment import eval_transform, supervised_augment, to_float
from victims.train import TrainConfig, fit, mix_seed, save_checkpoint

from .base import Attack, check_inputs, rng_devices
from .budgets import budget_table
from .poison import Poison, eps_to_pixels
from .registry import register_attack
from .spec import AttackSpec
from .unlearnable import batches, build_surrogate, load_state, logits_fn, scaled_params, state_path

SURROGATE_FILE = "surrogate.pt"  # victims.train.fit's checkpoint of the surrogate, under the workdir

# Budgets per scale, merged under spec.params; step_size is a fraction of eps. paper: the official settings
# (surrogate: 40 epochs of the supervised recipe; 250 steps of eps * 0.05 from 8 restarts). mini: 10,000
# CIFAR-10 images within ~25 CPU minutes per poison (docs/performance.md); fewer steps, so each is eps/10
# (still below 1/255, the 8-bit grid). smoke: seconds on synthetic data, hence large steps.
_AP = {"eps": 8 / 255, "step_size": 0.05}
_BUDGET: dict[str, dict[str, Any]] = {
    "paper": {**_AP, "pgd_steps": 250, "restarts": 8, "batch_size": 512, "surrogate_epochs": 40},
    "mini": {**_AP, "step_size": 0.1, "pgd_steps": 40, "restarts": 1, "batch_size": 256, "surrogate_epochs": 15},
    "smoke": {**_AP, "step_size": 0.25, "pgd_steps": 5, "restarts": 2, "batch_size": 64, "surrogate_epochs": 10},
}
BUDGETS = budget_table({scale: {"ap-t": b, "ap-u": b} for scale, b in _BUDGET.items()})
assert all(set(b) == set(_BUDGET["paper"]) for b in _BUDGET.values())


def objective(logits: torch.Tensor, labels: torch.Tensor, targeted: bool) -> torch.Tensor:
    """Per-sample loss the attack minimises: CE toward (y + 1) mod C, or minus the CE of y."""
    if targeted:
        return F.cross_entropy(logits, (labels + 1) % logits.shape[1], reduction="none")
    return -F.cross_entropy(logits, labels, reduction="none")


def success(logits: torch.Tensor, labels: torch.Tensor, targeted: bool) -> torch.Tensor:
    """Per sample: classified as the target (targeted) or as anything but y (untargeted)."""
    pred = logits.argmax(1)
    return pred == (labels + 1) % logits.shape[1] if targeted else pred != labels


class _AdversarialPoisoning(Attack):
    per = "sample"
    surrogate = "supervised"
    gpu_hours = 10.0
    extra_rows_in = ()
    targeted = True
    defaults = _BUDGET["paper"]

    def params(self, spec: AttackSpec) -> dict[str, Any]:
        return scaled_params(spec, BUDGETS)

    def generate(self, spec: AttackSpec, images: torch.Tensor, labels: torch.Tensor, index: torch.Tensor, *,
                 device: torch.device | str = "cpu", workdir: str | os.PathLike | None = None,
                 progress: bool = True) -> Poison:
        check_inputs(images, labels, index)
        p, device = self.params(spec), torch.device(device)
        with torch.random.fork_rng(devices=rng_devices(device)):
            torch.manual_seed(spec.seed)
            logits, size = self._surrogate(spec, p, images, labels, device, workdir, progress)
            delta = self._attack(spec, p, images, labels, device, logits, size, state_path(workdir), progress)
        return Poison.create(delta, self.per, p["eps"], spec, index)

    def _surrogate(self, spec: AttackSpec, p: dict, images: torch.Tensor, labels: torch.Tensor,
                   device: torch.device, workdir: str | os.PathLike | None, progress: bool):
        """Train (or reload) the surrogate on clean data; returns (its logits function, input size)."""
        model, config, size = build_surrogate(spec, int(labels.max()) + 1, images.shape[-1])
        config, augment = self.surrogate_recipe(spec, p, config, size)
        checkpoint = None if workdir is None else Path(workdir) / SURROGATE_FILE
        fit(model, images, labels, config, augment, device=device, checkpoint=checkpoint, progress=progress)
        model.to(device).eval()
        for q in model.parameters():
            q.requires_grad_(False)
        return logits_fn(model, config, device), size

    def _attack(self, spec: AttackSpec, p: dict, images: torch.Tensor, labels: torch.Tensor, device: torch.device,
                logits: Callable, size: int, path: Path | None, progress: bool) -> torch.Tensor:
        """int8 pixel deltas for every image, batch by batch, saved after each batch."""
        n = len(labels)
        state = load_state(path, spec, n) or {"key": spec.key, "rows": n, "next": 0,
                                               "delta": torch.zeros(images.shape, dtype=torch.int8)}
        augment, normalize = (m.to(device) for m in self.augmentations(spec, p, size))
        bar = tqdm(total=n, initial=state["next"], desc=self.name, unit="img", disable=not progress,
                   dynamic_ncols=True)
        for part in batches(n, p["batch_size"]):
            if part.start < state["next"]:
                continue
            torch.manual_seed(mix_seed(spec.seed, part.start))  # the augmentations' randomness
            gen = torch.Generator().manual_seed(mix_seed(spec.seed, part.start, 1))  # the random starts
            x, y = images[part].to(device), labels[part].to(device)
            best, loss, hit = self._batch(x, y, p, logits, augment, normalize, gen)
            state["delta"][part] = best.cpu()
            state["next"] = part.stop
            if path is not None:
                save_checkpoint(path, state)
            bar.update(part.stop - part.start)
            bar.set_postfix(loss=f"{loss:.4f}", success=f"{hit:.2f}")
        bar.close()
        return state["delta"]

    def surrogate_recipe(self, spec: AttackSpec, p: dict, config: TrainConfig, size: int):
        """(the surrogate's TrainConfig, its training views): the scale's supervised recipe for
        `surrogate_epochs`, with its crop and flip."""
        return replace(config, epochs=p["surrogate_epochs"]), supervised_augment(size, spec.dataset)

    def augmentations(self, spec: AttackSpec, p: dict, size: int):
        """(the differentiable augmentation of each PGD step, the transform of the final check): the
        supervised recipe's crop and flip, and its evaluation transform."""
        return supervised_augment(size, spec.dataset), eval_transform(size, spec.dataset)

    def start(self, shape: torch.Size, eps: float, gen: torch.Generator) -> torch.Tensor:
        """A random start, uniform in the eps ball (Fowl et al.'s restarts)."""
        return (torch.rand(shape, generator=gen) * 2 - 1).mul_(eps)

    def _batch(self, x: torch.Tensor, y: torch.Tensor, p: dict, logits: Callable, augment, normalize,
               gen: torch.Generator) -> tuple[torch.Tensor, float, float]:
        """PGD from `restarts` random starts on uint8 images `x`; returns the best int8 delta per sample,
        its mean loss and the fraction of samples on which the attack succeeds (no augmentation)."""
        eps, step, e = p["eps"], p["step_size"] * p["eps"], eps_to_pixels(p["eps"])
        xf = to_float(x)
        best = torch.zeros(x.shape, dtype=torch.int8, device=x.device)
        best_loss = torch.full((len(y),), float("inf"), device=x.device)
        best_hit = torch.zeros(len(y), dtype=torch.bool, device=x.device)
        for _ in range(p["restarts"]):
            d = self.start(x.shape, eps, gen).to(x.device)
            d = (xf + d).clamp_(0, 1) - xf
            for _ in range(p["pgd_steps"]):
                xa = (xf + d).requires_grad_(True)
                loss = objective(logits(augment(xa)), y, self.targeted).sum()
                g = torch.autograd.grad(loss, xa)[0]
                d = (d - step * g.sign()).clamp_(-eps, eps)
                d = (xf + d).clamp_(0, 1) - xf
            q = ((xf + d) * 255).round_().sub_(x.float()).clamp_(-e, e)  # the 8-bit delta released
            with torch.no_grad():
                out = logits(normalize((x.float() + q).clamp_(0, 255) / 255))
                value = objective(out, y, self.targeted)
            better = value < best_loss
            best[better] = q[better].to(torch.int8)
            best_loss = torch.where(better, value, best_loss)
            best_hit = torch.where(better, success(out, y, self.targeted), best_hit)
        return best, float(best_loss.mean()), float(best_hit.float().mean())


@register_attack("ap-t")
class AdversarialPoisoningTargeted(_AdversarialPoisoning):
    """Targeted adversarial poisoning: each image pushed toward class (y + 1) mod C."""

    targeted = True


@register_attack("ap-u")
class AdversarialPoisoningUntargeted(_AdversarialPoisoning):
    """Untargeted adversarial poisoning: each image pushed away from its class y."""

    targeted = False
