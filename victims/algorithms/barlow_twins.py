"""Barlow Twins (Zbontar et al., ICML 2021): the two views' embeddings cross-correlated towards the identity."""
from __future__ import annotations

import torch
from torch import nn

from ..augment import PerView, solo_view
from ..losses import barlow_twins_loss
from .base import Algorithm, mlp


class BarlowTwins(Algorithm):
    """As solo-learn's CIFAR recipe (scripts/pretrain/cifar/barlow.yaml): projector Linear-BN-ReLU twice and a
    last Linear, every Linear with a bias (solo/methods/barlow_twins.py:51-59); each view through the encoder on
    its own; the loss of victims/losses.barlow_twins_loss with lamb 0.0051 and scale_loss 0.1; solo's
    asymmetric views (solarisation on the second only). Its optimiser is LARS (the recipe's TrainConfig)."""

    name = "barlow_twins"
    gpu_hours = 8.0
    paper_tables = False  # its cells: the `beyond` grid and the leaderboard

    def __init__(self, encoder: nn.Module, num_classes: int = 0, *, hidden_dim: int = 2048, out_dim: int = 2048,
                 lamb: float = 0.0051, scale_loss: float = 0.1):
        super().__init__(encoder)
        if lamb < 0 or scale_loss <= 0:
            raise ValueError(f"barlow_twins: lamb must be >= 0 and scale_loss > 0, got lamb={lamb}, scale_loss={scale_loss}")
        self.lamb, self.scale_loss = lamb, scale_loss
        self.projector = mlp([self.feature_dim, hidden_dim, hidden_dim, out_dim], batch_norm=True)

    def embed(self, views: torch.Tensor) -> torch.Tensor:
        return self.projector(self.encoder(views))

    def pair_loss(self, view1: torch.Tensor, view2: torch.Tensor, *, dual_branch: bool = False) -> torch.Tensor:
        """Both branches are the same network: gradients always reach both views."""
        return barlow_twins_loss(self.embed(view1), self.embed(view2), lamb=self.lamb, scale_loss=self.scale_loss)

    @classmethod
    def augmentation(cls, size: int, dataset: str) -> nn.Module:
        """solo-learn's asymmetric.yaml: saturation 0.2, no blur; solarisation p 0.2 on the second view only."""
        return PerView(solo_view(size, dataset, saturation=0.2),
                       solo_view(size, dataset, saturation=0.2, solarize_p=0.2))
