"""BYOL (Grill et al., 2020): an online projector + predictor regresses an EMA target's projection."""
from __future__ import annotations

import torch
from torch import nn

from ..losses import negative_cosine
from .base import MomentumAlgorithm, mlp, momentum_copy


class BYOL(MomentumAlgorithm):
    """As the official CP code: projector and predictor Linear-BN-ReLU-Linear; the loss -cos, averaged over
    both directions; in `forward` mode the target moves once per direction, i.e. twice per loss (see
    MomentumAlgorithm). `target_gradient` (an extension, off in the official code, whose loss detaches the
    target) lets an attack's gradient reach the views through the target branch too."""

    name = "byol"
    gpu_hours = 10.0

    def __init__(self, encoder: nn.Module, num_classes: int = 0, *, momentum: float = 0.999,
                 hidden_dim: int = 4096, out_dim: int = 256, state_updates: str = "forward",
                 target_gradient: bool = False):
        super().__init__(encoder, momentum, state_updates)
        self.target_gradient = target_gradient
        self.projector = mlp([self.feature_dim, hidden_dim, out_dim], batch_norm=True)
        self.predictor = mlp([out_dim, hidden_dim, out_dim], batch_norm=True)
        self.target_encoder, self.target_projector = momentum_copy(self.encoder), momentum_copy(self.projector)

    def momentum_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return [(self.target_encoder, self.encoder), (self.target_projector, self.projector)]

    def embed(self, views: torch.Tensor) -> torch.Tensor:
        return self.projector(self.encoder(views))

    def targets(self, views: torch.Tensor) -> torch.Tensor:
        return self.target_projector(self.target_encoder(views))

    def pair_loss(self, view1: torch.Tensor, view2: torch.Tensor, *, dual_branch: bool = False) -> torch.Tensor:
        """Symmetric: view1's prediction regresses view2's target, then the other way round. The target
        is detached unless both `dual_branch` (the attack asks for the momentum branch) and
        `target_gradient` are on."""
        through_target = dual_branch and self.target_gradient
        if through_target:  # both moves first: an in-place move after a target forward would spoil its backward
            self.forward_update()
            self.forward_update()
        loss = 0.0
        for online, target in ((view1, view2), (view2, view1)):
            if not through_target:
                self.forward_update()
            p = self.predictor(self.embed(online))
            with torch.set_grad_enabled(through_target and torch.is_grad_enabled()):
                t = self.targets(target)
            loss = loss + negative_cosine(p, t if through_target else t.detach()) / 2
        return loss
