"""TUE (Ren et al., "Transferable Unlearnable Examples", ICLR 2023): sample-wise noise whose class-wise
separability (CSD, a Davies-Bouldin-like ratio of spread to distance between the classes' mean noises) is
minimised.

Follows github renjie3/TUE @ 6b3752b with its README's SimCLR and SimSiam commands (demo.sh:3, 9:
`--ssl_weight 0 --linear_noise_csd_weight 0.1 --epochs 40 --num_steps 20 --train_step 20 --random_start`,
eps 8, step 0.8): with the contrastive weight 0 the surrogate's loss never reaches the noise (toolbox.py:197-207)
and a signed step ignores the CSD weight, so the noise is decided by the CSD alone and no surrogate is trained
here (docs/fidelity.md). The loop (ssl_perturbation.py:158-262): a uniform start in the eps ball; per epoch,
one cycle per `train_step` of the surrogate's batches (5 at 50,000 images, 1 at 10,000), each cycle a pass
over the shuffled data in batches of 512, `num_steps` signed descent steps of the batch's CSD per batch.
"""
from __future__ import annotations

import os
from typing import Any

import torch
from tqdm import tqdm

from victims.train import mix_seed, save_checkpoint

from .base import Attack, check_inputs
from .budgets import budget_table
from .poison import Poison
from .registry import register_attack
from .spec import AttackSpec
from .unlearnable import batches, load_state, scaled_params, state_path

_TUE = {"eps": 8 / 255, "step_size": 0.8 / 255, "num_steps": 20, "train_step": 20, "batch_size": 512, "epochs": 40}
BUDGETS = budget_table({
    "paper": {"tue": dict(_TUE)},
    "mini": {"tue": dict(_TUE)},  # no network: the authors' budget costs minutes on a CPU
    "smoke": {"tue": {**_TUE, "num_steps": 5, "batch_size": 64, "epochs": 2}},
})
INTS = ("num_steps", "train_step", "batch_size", "epochs")


def csd_loss(delta: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The class-wise separability of a batch of noises (simclr_utils.py:46-91): per class present, the centre
    c_k (mean of its flattened noises) and the spread s_k (mean L2 distance to the centre, detached); the mean
    over ordered pairs k != l of (s_k + s_l + 1e-5) / (||c_k - c_l|| + 1e-5); 0 with fewer than two classes."""
    flat = delta.flatten(1)
    classes = labels.unique()
    if len(classes) < 2:
        return flat.sum() * 0.0
    centres = torch.stack([flat[labels == k].mean(0) for k in classes])
    spread = torch.stack([(flat[labels == k] - c).norm(dim=1).mean() for k, c in zip(classes, centres)]).detach()
    distance = torch.cdist(centres[None], centres[None])[0]
    off = ~torch.eye(len(classes), dtype=torch.bool, device=delta.device)
    ratio = (spread[:, None] + spread[None, :] + 1e-5) / (distance + 1e-5)
    return ratio[off].mean()


@register_attack("tue")
class TransferableUnlearnable(Attack):
    """Sample-wise CSD-minimising noise; `train_step` sets the cycles per epoch as the authors' surrogate
    batches do (ceil(ceil(N / batch) / train_step)); no surrogate network (see the module docstring)."""

    per = "sample"
    gpu_hours = 0.2
    extra_rows_in = ("beyond", "leaderboard")
    defaults = BUDGETS["paper"]["tue"]

    def params(self, spec: AttackSpec) -> dict[str, Any]:
        return scaled_params(spec, BUDGETS, INTS)

    def generate(self, spec: AttackSpec, images: torch.Tensor, labels: torch.Tensor, index: torch.Tensor, *,
                 device: torch.device | str = "cpu", workdir: str | os.PathLike | None = None,
                 progress: bool = True) -> Poison:
        check_inputs(images, labels, index)
        p, device, n = self.params(spec), torch.device(device), len(labels)
        eps, step = p["eps"], p["step_size"]
        cycles = -(-(-(-n // p["batch_size"])) // p["train_step"])  # the surrogate's batches per epoch / train_step
        path = state_path(workdir)
        state = load_state(path, spec, n)
        if state is None:
            gen = torch.Generator().manual_seed(int(spec.seed))
            start = (torch.rand(images.shape, generator=gen) * 2 - 1) * eps  # their random start
            state = {"key": spec.key, "rows": n, "pass": 0, "delta": start, "history": []}
        delta = state["delta"].to(device)
        x_all, y_all = images.to(device), labels.to(device)
        total = p["epochs"] * cycles
        bar = tqdm(total=total, initial=state["pass"], desc=self.name, unit="pass", disable=not progress,
                   dynamic_ncols=True)
        while state["pass"] < total:
            order = torch.randperm(n, generator=torch.Generator().manual_seed(mix_seed(spec.seed, state["pass"])))
            losses = []
            for b in batches(n, p["batch_size"]):
                ids = order[b].to(device)
                x, y, d = x_all[ids].float() / 255, y_all[ids], delta[ids]
                for _ in range(p["num_steps"]):
                    d = d.detach().requires_grad_(True)
                    loss = csd_loss(d, y)
                    g = torch.autograd.grad(loss, d)[0]
                    # their projection: the previous noise kept in the image range, then the step, then the ball
                    d = ((x + d.detach()).clamp(0, 1) - step * g.sign() - x).clamp(-eps, eps)
                delta[ids] = d
                losses.append(float(loss.detach()))
            state["pass"] += 1
            state["history"].append({"pass": state["pass"], "csd": sum(losses) / len(losses)})
            bar.update(1)
            bar.set_postfix(csd=f"{state['history'][-1]['csd']:.4f}")
            if path is not None:
                save_checkpoint(path, {**state, "delta": delta.cpu()})
        bar.close()
        self.report = {"history": state["history"]}
        return Poison.create(delta.cpu() * 255, self.per, eps, spec, index)
