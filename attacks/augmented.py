"""AUE and AAP (Wang, Zhu & Gao, "Efficient Availability Attacks against Supervised and Contrastive Learning
Simultaneously", NeurIPS 2024; github EhanW/AUE-AAP @ 64fb25f, docs/sources/aue-aap-tue.md): unlearnable
examples and adversarial poisoning crafted through contrastive-like augmentations (`strength_augment`) on a
supervised surrogate that sees [0, 1] pixels.

- `aue` (aue.py): zero start; each of `rounds` rounds trains the surrogate one pass over the shuffled data on
  aug(x + delta) (SGD, cosine over the rounds), then, surrogate frozen in eval mode, a pass over the shuffled
  data taking `pgd_steps` signed steps of eps/10 per batch DOWN the cross-entropy of aug(x + delta), each
  projected to the eps ball and the image range. A fixed number of rounds (no error threshold).
- `aap` (aap.py): a reference surrogate trained on augmented clean data (lr 0.5, cosine), then every image
  attacked once from zero with `pgd_steps` signed steps of 2.5 eps / steps through aug(x + delta), towards
  class (y + 1) mod C (targeted, their CIFAR-10 recipe).

The augmentation strength is the authors' per data set (`strength` None: 0.6 for AUE and 0.4 for AAP on
CIFAR-10, 1.0 and 0.8 on CIFAR-100, their example.sh); docs/fidelity.md lists what differs.
"""
from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm import tqdm

from victims.augment import eval_transform, strength_augment, to_float
from victims.train import TrainConfig, Trainer, load_checkpoint, mix_seed, save_checkpoint

from .adversarial import _AdversarialPoisoning
from .base import Attack, AttackParamError, check_inputs, frozen, rng_devices
from .budgets import budget_table
from .poison import Poison
from .registry import register_attack
from .spec import AttackSpec
from .unlearnable import batches, build_surrogate, logits_fn, scaled_params, state_path

# example.sh: AUE --strength 0.6 (CIFAR-10) / 1.0 (CIFAR-100); AAP --ref/--gen-strength 0.4 / 0.8
STRENGTH = {"aue": {"cifar10": 0.6, "cifar100": 1.0}, "aap": {"cifar10": 0.4, "cifar100": 0.8}}
DEFAULT_STRENGTH = {"aue": 1.0, "aap": 1.0}  # their argparse defaults, for any other data set

_AUE = {"eps": 8 / 255, "step_size": 0.1, "pgd_steps": 5, "batch_size": 128, "lr": 0.1, "weight_decay": 1e-4,
        "strength": None}
_AAP = {"eps": 8 / 255, "pgd_steps": 250, "batch_size": 128, "lr": 0.5, "weight_decay": 1e-4, "strength": None,
        "surrogate_epochs": 40}
# step_size is a fraction of eps: AUE's eps/10 (aue.py:93), AAP's 2.5 eps / pgd_steps (aap.py:100).
# paper: the authors' CIFAR recipe (60 rounds; a 40-epoch reference and 250 steps). mini: a third of AUE's
# rounds and AP's mini reference and steps (attacks/adversarial.py). smoke: seconds on generated data.
BUDGETS = budget_table({
    "paper": {"aue": {**_AUE, "rounds": 60}, "aap": {**_AAP, "step_size": 2.5 / 250}},
    "mini": {"aue": {**_AUE, "rounds": 20},
             "aap": {**_AAP, "pgd_steps": 40, "step_size": 2.5 / 40, "surrogate_epochs": 15}},
    "smoke": {"aue": {**_AUE, "rounds": 2, "batch_size": 64},
              "aap": {**_AAP, "pgd_steps": 5, "step_size": 2.5 / 5, "surrogate_epochs": 2, "batch_size": 64}},
})
INTS = ("pgd_steps", "batch_size", "rounds", "surrogate_epochs")


def augmented_params(spec: AttackSpec) -> dict[str, Any]:
    """The scale's budget with spec.params over it, the strength resolved for the data set, ranges checked."""
    p = scaled_params(spec, BUDGETS, INTS)
    if p["strength"] is None:
        p["strength"] = STRENGTH[spec.attack].get(spec.dataset, DEFAULT_STRENGTH[spec.attack])
    if not 0 < float(p["strength"]) <= 1:
        raise AttackParamError(f"{spec.attack}: strength must be in (0, 1], got {p['strength']!r}")
    if p["lr"] <= 0 or p["weight_decay"] < 0:
        raise AttackParamError(f"{spec.attack}: lr must be > 0 and weight_decay >= 0, got {p['lr']}, "
                               f"{p['weight_decay']}")
    return p


@register_attack("aue")
class AugmentedUnlearnable(Attack):
    """Sample-wise error-minimising noise crafted through contrastive-like augmentations (aue.py:121-164)."""

    per = "sample"
    surrogate = "supervised"
    gpu_hours = 2.0
    extra_rows_in = ("beyond", "leaderboard")
    defaults = BUDGETS["paper"]["aue"]

    def params(self, spec: AttackSpec) -> dict[str, Any]:
        return augmented_params(spec)

    def generate(self, spec: AttackSpec, images: torch.Tensor, labels: torch.Tensor, index: torch.Tensor, *,
                 device: torch.device | str = "cpu", workdir: str | os.PathLike | None = None,
                 progress: bool = True) -> Poison:
        check_inputs(images, labels, index)
        p, device = self.params(spec), torch.device(device)
        with torch.random.fork_rng(devices=rng_devices(device)):
            torch.manual_seed(spec.seed)
            delta = self._craft(spec, p, images.to(device), labels.to(device), device, state_path(workdir),
                                progress)
        return Poison.create(delta.cpu() * 255, self.per, p["eps"], spec, index)

    def _craft(self, spec: AttackSpec, p: dict, images: torch.Tensor, labels: torch.Tensor, device: torch.device,
               path: Path | None, progress: bool) -> torch.Tensor:
        n, size = len(labels), images.shape[-1]
        model, config, _ = build_surrogate(spec, int(labels.max()) + 1, size)
        steps = -(-n // p["batch_size"])  # every batch, the last partial one included (their loader)
        config = replace(config, epochs=p["rounds"], batch_size=p["batch_size"], lr=p["lr"], momentum=0.9,
                         weight_decay=p["weight_decay"], warmup_epochs=0, final_lr_ratio=0.0, grad_clip=0.0)
        augment = strength_augment(size, "raw", p["strength"]).to(device)
        trainer = Trainer(model, config, augment, device, steps_per_epoch=steps)
        logits = logits_fn(model, config, device)
        state = load_checkpoint(path) if path is not None else None
        if state is not None and state.get("key") == spec.key and int(state.get("rows", -1)) == n:
            trainer.load_state_dict(state["trainer"])
            delta = state["delta"].to(device)
        else:
            state = {"key": spec.key, "rows": n, "round": 0, "history": []}
            delta = torch.zeros(images.shape, device=device)
        eps, step = p["eps"], p["step_size"] * p["eps"]
        bar = tqdm(total=p["rounds"], initial=state["round"], desc=self.name, unit="round", disable=not progress,
                   dynamic_ncols=True)
        while state["round"] < p["rounds"]:
            r = state["round"]
            torch.manual_seed(mix_seed(spec.seed, r))  # the round's augmentations (a resumed round: the same)
            order = torch.randperm(n, generator=torch.Generator().manual_seed(mix_seed(spec.seed, r, 1)))
            train = [trainer.train_step(to_float(images[ids]) + delta[ids], labels[ids])
                     for ids in (order[b].to(device) for b in batches(n, p["batch_size"]))]
            order = torch.randperm(n, generator=torch.Generator().manual_seed(mix_seed(spec.seed, r, 2)))
            losses = []
            with frozen(model):
                for b in batches(n, p["batch_size"]):
                    ids = order[b].to(device)
                    x, y, d = to_float(images[ids]), labels[ids], delta[ids]
                    for _ in range(p["pgd_steps"]):
                        xa = (x + d).requires_grad_(True)
                        loss = F.cross_entropy(logits(augment(xa)), y)
                        g = torch.autograd.grad(loss, xa)[0]
                        d = (d - step * g.sign()).clamp_(-eps, eps)
                        d = (x + d).clamp_(0, 1) - x
                    delta[ids] = d
                    losses.append(float(loss.detach()))
            state["round"] = r + 1
            state["history"].append({"round": r + 1, "train_loss": sum(train) / len(train),
                                     "poison_loss": sum(losses) / len(losses)})
            bar.update(1)
            bar.set_postfix(train=f"{state['history'][-1]['train_loss']:.3f}",
                            poison=f"{state['history'][-1]['poison_loss']:.3f}")
            if path is not None:
                save_checkpoint(path, {**state, "delta": delta.cpu(), "trainer": trainer.state_dict()})
        bar.close()
        self.report = {"history": state["history"]}
        return delta


@register_attack("aap")
class AugmentedAdversarialPoisoning(_AdversarialPoisoning):
    """Targeted adversarial poisoning through contrastive-like augmentations (aap.py:97-147, 229-255)."""

    targeted = True
    gpu_hours = 3.0
    extra_rows_in = ("beyond", "leaderboard")
    defaults = BUDGETS["paper"]["aap"]

    def params(self, spec: AttackSpec) -> dict[str, Any]:
        return {**augmented_params(spec), "restarts": 1}  # one start, from zero (aap.py:247)

    def surrogate_recipe(self, spec: AttackSpec, p: dict, config: TrainConfig, size: int):
        """Their reference model: trained on augmented clean data (strength s, [0, 1] pixels), lr 0.5, cosine."""
        config = replace(config, epochs=p["surrogate_epochs"], batch_size=p["batch_size"], lr=p["lr"],
                         weight_decay=p["weight_decay"], warmup_epochs=0, final_lr_ratio=0.0)
        return config, strength_augment(size, "raw", p["strength"])

    def augmentations(self, spec: AttackSpec, p: dict, size: int):
        """The PGD's augmentation and the final check's transform: strength s, and [0, 1] pixels as they are."""
        return strength_augment(size, "raw", p["strength"]), eval_transform(size, "raw")

    def start(self, shape: torch.Size, eps: float, gen: torch.Generator) -> torch.Tensor:
        return torch.zeros(shape)  # their zero start (aap.py:247)

