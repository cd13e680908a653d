"""BYOL (Grill et al., 2020): an online projector + predictor regresses an EMA target's projection."""
from __future__ import annotations

import torch
from torch import nn

from ..losses import negative_cosine
from .base import Algorithm, ema_update, mlp, momentum_copy


class BYOL(Algorithm):
    name = "byol"

    def __init__(self, encoder: nn.Module, num_classes: int = 0, *, momentum: float = 0.999,
                 hidden_dim: int = 4096, out_dim: int = 256):
        super().__init__(encoder)
        self.momentum = momentum
        self.projector = mlp([self.feature_dim, hidden_dim, out_dim])
        self.predictor = mlp([out_dim, hidden_dim, out_dim])
        self.target_encoder, self.target_projector = momentum_copy(self.encoder), momentum_copy(self.projector)

    def embed(self, views: torch.Tensor) -> torch.Tensor:
        return self.projector(self.encoder(views))

    def targets(self, views: torch.Tensor) -> torch.Tensor:
        return self.target_projector(self.target_encoder(views))

    def pair_loss(self, view1: torch.Tensor, view2: torch.Tensor, *, dual_branch: bool = False) -> torch.Tensor:
        """Symmetric negative cosine, averaged over both directions. With `dual_branch` the target
        outputs are not detached: the gradient really reaches the views through the target branch
        (the official CP code detached them, which silently removed that path)."""
        p1, p2 = self.predictor(self.embed(view1)), self.predictor(self.embed(view2))
        if dual_branch:
            t1, t2 = self.targets(view1), self.targets(view2)
        else:
            with torch.no_grad():
                t1, t2 = self.targets(view1), self.targets(view2)
        return (negative_cosine(p1, t2) + negative_cosine(p2, t1)) / 2

    @torch.no_grad()
    def on_step_end(self) -> None:
        ema_update(self.target_encoder, self.encoder, self.momentum)
        ema_update(self.target_projector, self.projector, self.momentum)
