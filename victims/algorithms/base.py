"""The interface every learning algorithm implements, and small head builders."""
from __future__ import annotations

import copy
from typing import ClassVar

import torch
from torch import nn

from ..augment import contrastive_augment


class Algorithm(nn.Module):
    """An encoder with the heads and state of one learning algorithm.

    `forward` returns the training loss (so that DDP can wrap the whole module); `pair_loss` is the
    contrastive loss on two batches of views, differentiable w.r.t. the views (attacks use it);
    `on_step_end` runs after each optimiser step (momentum encoders, queues).
    """

    name: ClassVar[str]
    contrastive: ClassVar[bool] = True  # trained on two views without labels (a column of the CL tables)
    gpu_hours: ClassVar[float] = 8.0  # rough cost of one victim at the paper scale on CIFAR-10 (A100 hours)
    # a column of the paper's table grids (the paper's algorithms, and a plugin's by default); the built-in
    # successors (SimSiam, Barlow Twins) are measured in the `beyond` grid instead, so that the paper's grids
    # stay the paper's cells
    paper_tables: ClassVar[bool] = True

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder
        self.feature_dim: int = encoder.feature_dim

    def forward(self, view1: torch.Tensor, view2: torch.Tensor | None = None,
                labels: torch.Tensor | None = None) -> torch.Tensor:
        if view2 is None:
            raise ValueError(f"{self.name} needs two views")
        return self.pair_loss(view1, view2)

    def pair_loss(self, view1: torch.Tensor, view2: torch.Tensor, *, dual_branch: bool = False) -> torch.Tensor:
        raise NotImplementedError

    def embed(self, views: torch.Tensor) -> torch.Tensor:
        """The embedding the algorithm's loss compares (projection output), for alignment/uniformity."""
        raise NotImplementedError

    @classmethod
    def augmentation(cls, size: int, dataset: str) -> nn.Module:
        """The views its recipe trains on: the paper's SimCLR-style pipeline (victims/augment.py), called
        on the batch repeated once per view. An algorithm whose authors use other views overrides this."""
        return contrastive_augment(size, dataset)

    def param_groups(self) -> list[dict]:
        """The optimiser's parameter groups: one by default. A group with `static_lr` keeps the base
        learning rate through warm-up and cosine (solo-learn's `static_lr`, e.g. SimSiam's predictor)."""
        return [{"params": [p for p in self.parameters() if p.requires_grad]}]

    @torch.no_grad()
    def on_step_end(self) -> None:
        pass


def mlp(dims: list[int], batch_norm: bool) -> nn.Sequential:
    """Linear(-BN)-ReLU blocks between consecutive dims, a plain Linear at the end (every Linear with a
    bias, as torch's default and the official heads have it)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(dims) - 2:
            layers += [nn.BatchNorm1d(b)] if batch_norm else []
            layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def momentum_copy(module: nn.Module) -> nn.Module:
    """A frozen copy updated by EMA (no gradients to its parameters; gradients may pass through it)."""
    target = copy.deepcopy(module)
    for p in target.parameters():
        p.requires_grad_(False)
    return target


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, momentum: float) -> None:
    """Parameters only, as the official MoCo and BYOL: the copy's batch-norm statistics are its own
    (accumulated by its own forwards in train mode)."""
    for t, o in zip(target.parameters(), online.parameters()):
        t.mul_(momentum).add_(o.detach(), alpha=1 - momentum)


STATE_UPDATES = ("forward", "step")


class MomentumAlgorithm(Algorithm):
    """An algorithm with EMA copies of its online modules (MoCo v2's key encoder, BYOL's target).

    `state_updates="forward"` (official): every forward of the loss moves the copies (and MoCo enqueues its
    keys), the forwards of the perturbation steps of an attack included; `"step"`: only after optimiser steps.
    """

    def __init__(self, encoder: nn.Module, momentum: float, state_updates: str):
        super().__init__(encoder)
        if state_updates not in STATE_UPDATES:
            raise ValueError(f"state_updates must be one of {STATE_UPDATES}, not {state_updates!r}")
        self.momentum, self.state_updates = momentum, state_updates

    def momentum_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        """(copy, online module) pairs moved by `momentum_update`."""
        raise NotImplementedError

    @torch.no_grad()
    def momentum_update(self) -> None:
        for target, online in self.momentum_pairs():
            ema_update(target, online, self.momentum)

    def forward_update(self) -> None:
        """The update the official code does at the start of a forward (nothing in `step` mode)."""
        if self.state_updates == "forward":
            self.momentum_update()

    @torch.no_grad()
    def on_step_end(self) -> None:
        if self.state_updates == "step":
            self.momentum_update()
