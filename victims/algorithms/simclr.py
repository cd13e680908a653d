"""SimCLR (Chen et al., 2020): NT-Xent between two views' projections."""
from __future__ import annotations

import torch
from torch import nn

from ..losses import nt_xent, scale_gradient, temperature_scale
from .base import Algorithm, mlp


class SimCLR(Algorithm):
    """`base_temperature` scales the loss by temperature / base_temperature (official: 0.07; None: the
    textbook loss). `gradient_share` multiplies the gradient, not the value: the official launcher's
    feature gather returns each of its 4 processes only its own slice's gradient and DDP then averages, so
    its encoder steps with a quarter of the full-batch gradient (1.0 restores the full gradient)."""

    name = "simclr"

    def __init__(self, encoder: nn.Module, num_classes: int = 0, *, temperature: float = 0.5,
                 hidden_dim: int | None = None, out_dim: int = 128, head_batch_norm: bool = False,
                 base_temperature: float | None = 0.07, gradient_share: float = 0.25):
        super().__init__(encoder)
        self.temperature, self.gradient_share = temperature, gradient_share
        self.loss_scale = temperature_scale(temperature, base_temperature)
        self.head = mlp([self.feature_dim, hidden_dim or self.feature_dim, out_dim], batch_norm=head_batch_norm)

    def embed(self, views: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(views))

    def pair_loss(self, view1: torch.Tensor, view2: torch.Tensor, *, dual_branch: bool = False) -> torch.Tensor:
        """Both views in one forward (batch-norm statistics over both, as the official code); both branches
        share the encoder, so gradients always reach both views."""
        z1, z2 = self.embed(torch.cat([view1, view2])).chunk(2)
        return scale_gradient(self.loss_scale * nt_xent(z1, z2, self.temperature), self.gradient_share)
