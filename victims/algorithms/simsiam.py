"""SimSiam (Chen & He, CVPR 2021): a predictor regresses the other view's projection, under stop-gradient."""
from __future__ import annotations

import torch
from torch import nn

from ..augment import solo_view
from ..losses import negative_cosine
from .base import Algorithm


def projector(in_dim: int, hidden_dim: int, out_dim: int) -> nn.Sequential:
    """Three Linear-BN layers, the last BN without affine and the last Linear's bias frozen (it is followed by
    BN): facebookresearch/simsiam builder.py:26-36, solo-learn solo/methods/simsiam.py:48-58."""
    last = nn.Linear(hidden_dim, out_dim)
    last.bias.requires_grad_(False)
    return nn.Sequential(nn.Linear(in_dim, hidden_dim, bias=False), nn.BatchNorm1d(hidden_dim), nn.ReLU(inplace=True),
                         nn.Linear(hidden_dim, hidden_dim, bias=False), nn.BatchNorm1d(hidden_dim),
                         nn.ReLU(inplace=True), last, nn.BatchNorm1d(out_dim, affine=False))


def predictor(dim: int, bottleneck: int) -> nn.Sequential:
    """Linear-BN-ReLU-Linear with a bottleneck (simsiam builder.py:38-42, solo simsiam.py:61-66)."""
    return nn.Sequential(nn.Linear(dim, bottleneck, bias=False), nn.BatchNorm1d(bottleneck), nn.ReLU(inplace=True),
                         nn.Linear(bottleneck, dim))


class SimSiam(Algorithm):
    """As solo-learn's CIFAR recipe (scripts/pretrain/cifar/simsiam.yaml): each view through the encoder on
    its own, loss -cos(p1, sg(z2)) / 2 - cos(p2, sg(z1)) / 2 (solo simsiam.py:137, solo/losses/simsiam.py:38),
    the predictor at a constant learning rate (`static_lr`, solo simsiam.py:97), solo's symmetric weak views.
    `target_gradient` (an extension, off in the authors' code) lets an attack's gradient reach the views
    through the stop-gradient branch too, as BYOL's option of that name."""

    name = "simsiam"
    gpu_hours = 8.0
    paper_tables = False  # its cells: the `beyond` grid and the leaderboard

    def __init__(self, encoder: nn.Module, num_classes: int = 0, *, hidden_dim: int = 2048, out_dim: int = 2048,
                 pred_dim: int = 512, target_gradient: bool = False):
        super().__init__(encoder)
        self.target_gradient = target_gradient
        self.projector = projector(self.feature_dim, hidden_dim, out_dim)
        self.predictor = predictor(out_dim, pred_dim)

    def embed(self, views: torch.Tensor) -> torch.Tensor:
        return self.projector(self.encoder(views))

    def pair_loss(self, view1: torch.Tensor, view2: torch.Tensor, *, dual_branch: bool = False) -> torch.Tensor:
        z1, z2 = self.embed(view1), self.embed(view2)
        p1, p2 = self.predictor(z1), self.predictor(z2)
        if not (dual_branch and self.target_gradient):
            z1, z2 = z1.detach(), z2.detach()
        return negative_cosine(p1, z2) / 2 + negative_cosine(p2, z1) / 2

    @classmethod
    def augmentation(cls, size: int, dataset: str) -> nn.Module:
        """solo-learn's symmetric_weak.yaml: saturation 0.4, blur p 0.5, no solarisation, both views alike."""
        return solo_view(size, dataset, saturation=0.4, blur_p=0.5)

    def param_groups(self) -> list[dict]:
        predictor_ids = {id(p) for p in self.predictor.parameters()}
        rest = [p for p in self.parameters() if p.requires_grad and id(p) not in predictor_ids]
        return [{"params": rest}, {"params": list(self.predictor.parameters()), "static_lr": True}]
