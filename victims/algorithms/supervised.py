"""Supervised learning: cross-entropy of a linear classifier on the encoder's features."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..augment import supervised_augment
from .base import Algorithm


class Supervised(Algorithm):
    name = "supervised"
    contrastive = False
    gpu_hours = 1.0

    def __init__(self, encoder: nn.Module, num_classes: int):
        super().__init__(encoder)
        if num_classes < 2:
            raise ValueError("the supervised algorithm needs the number of classes")
        self.classifier = nn.Linear(self.feature_dim, num_classes)

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.encoder(images))

    def forward(self, view1: torch.Tensor, view2: torch.Tensor | None = None,
                labels: torch.Tensor | None = None) -> torch.Tensor:
        if labels is None:
            raise ValueError("the supervised algorithm needs labels")
        return F.cross_entropy(self.logits(view1).float(), labels)

    def pair_loss(self, view1: torch.Tensor, view2: torch.Tensor, *, dual_branch: bool = False) -> torch.Tensor:
        raise TypeError("the supervised algorithm has no contrastive pair loss; call it with labels")

    def embed(self, views: torch.Tensor) -> torch.Tensor:
        return self.encoder(views)

    @classmethod
    def augmentation(cls, size: int, dataset: str) -> nn.Module:
        """The supervised recipe's crop and flip (victims/augment.py)."""
        return supervised_augment(size, dataset)
