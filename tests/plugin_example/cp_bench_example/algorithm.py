"""The contrastive algorithm 'align': two views' normalised projections pulled together (a toy: it can
collapse; it shows the plumbing), with its recipe at the smoke and mini scales."""
from __future__ import annotations

from dataclasses import replace

import torch.nn.functional as F

from victims.algorithms import Algorithm
from victims.algorithms.base import mlp
from victims.recipes import MODELS, add_recipe


class Align(Algorithm):
    """Negative cosine similarity of the two views' projections."""

    contrastive = True

    def __init__(self, encoder, num_classes: int = 0, *, out_dim: int = 64):
        super().__init__(encoder)
        self.head = mlp([self.feature_dim, out_dim], batch_norm=False)

    def embed(self, views):
        return self.head(self.encoder(views))

    def pair_loss(self, view1, view2, *, dual_branch: bool = False):
        return -F.cosine_similarity(self.embed(view1), self.embed(view2)).mean()


# the recipe: SimCLR's training settings at each scale, a smaller head at the smoke scale
add_recipe("align", {scale: replace(MODELS[scale].train["simclr"], lr=0.05) for scale in ("smoke", "mini")},
           {"smoke": {"out_dim": 8}})
