"""SimCLR (Chen et al., 2020): NT-Xent between two views' projections."""
from __future__ import annotations

import torch
from torch import nn

from ..losses import nt_xent
from .base import Algorithm, mlp


class SimCLR(Algorithm):
    name = "simclr"

    def __init__(self, encoder: nn.Module, num_classes: int = 0, *, temperature: float = 0.5,
                 hidden_dim: int | None = None, out_dim: int = 128):
        super().__init__(encoder)
        self.temperature = temperature
        self.head = mlp([self.feature_dim, hidden_dim or self.feature_dim, out_dim])

    def embed(self, views: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(views))

    def pair_loss(self, view1: torch.Tensor, view2: torch.Tensor, *, dual_branch: bool = False) -> torch.Tensor:
        """Both branches share the encoder, so gradients always reach both views."""
        return nt_xent(self.embed(view1), self.embed(view2), self.temperature)
