"""LARS (You et al., 2017, "Large batch training of convolutional networks") with the semantics of solo-learn's
optimiser (solo/utils/lars.py, itself from Lightning Bolts), which the Barlow Twins CIFAR recipe trains with."""
from __future__ import annotations

import torch


class LARS(torch.optim.Optimizer):
    """SGD with momentum whose step for each parameter tensor is scaled by its trust ratio
    eta * ||p|| / (||g|| + weight_decay * ||p|| + eps), with weight decay added to the gradient first.

    As solo-learn: `clip` replaces the ratio by min(ratio / lr, 1); `exclude_1d` leaves 1-D tensors (biases,
    batch-norm weights) with neither the ratio nor weight decay; a tensor whose weight or gradient norm is 0
    gets neither either. Momentum as torch's SGD (the first buffer is the first step, no dampening)."""

    def __init__(self, params, lr: float, momentum: float = 0.9, weight_decay: float = 0.0, eta: float = 1e-3,
                 eps: float = 1e-8, clip: bool = False, exclude_1d: bool = False):
        if lr < 0 or momentum < 0 or weight_decay < 0 or eta <= 0:
            raise ValueError(f"LARS needs lr, momentum, weight_decay >= 0 and eta > 0; got lr={lr}, "
                             f"momentum={momentum}, weight_decay={weight_decay}, eta={eta}")
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay, eta=eta, eps=eps,
                                      clip=clip, exclude_1d=exclude_1d))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, wd = group["lr"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                update = p.grad
                if not (group["exclude_1d"] and p.ndim == 1):
                    w_norm, g_norm = torch.linalg.vector_norm(p), torch.linalg.vector_norm(p.grad)
                    if w_norm > 0 and g_norm > 0:
                        ratio = group["eta"] * w_norm / (g_norm + wd * w_norm + group["eps"])
                        if group["clip"]:
                            ratio = torch.clamp(ratio / lr, max=1.0) if lr > 0 else torch.ones_like(ratio)
                        update = (update + wd * p) * ratio
                if group["momentum"]:
                    state = self.state[p]
                    if "momentum_buffer" not in state:
                        state["momentum_buffer"] = update.detach().clone()
                    else:
                        state["momentum_buffer"].mul_(group["momentum"]).add_(update)
                    update = state["momentum_buffer"]
                p.add_(update, alpha=-lr)
        return loss
