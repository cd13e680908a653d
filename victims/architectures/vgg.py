"""VGG-19 (batch norm) feature extractor built with torchvision's `make_layers`."""
from __future__ import annotations

import torch
from torch import nn
from torchvision.models.vgg import cfgs, make_layers

from .resnet import init_conv_bn_, scaled


class VGG(nn.Module):
    """VGG-19-BN conv trunk ("E" configuration, channels x width) + global average pooling.

    The same trunk serves both stems (5 max-pools: 32 px -> 1x1, 224 px -> 7x7). The ImageNet
    VGG's 4096-d fully-connected layers are not used: as is usual in self-supervised learning,
    the feature is the pooled output of the last conv block (512*width dims).
    """

    def __init__(self, *, width: float = 1.0):
        super().__init__()
        cfg = [v if v == "M" else scaled(int(v), width) for v in cfgs["E"]]
        self.features = make_layers(cfg, batch_norm=True)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.feature_dim: int = scaled(512, width)
        init_conv_bn_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.pool(self.features(x)), 1)


def vgg19(*, stem: str = "cifar", width: float = 1.0) -> VGG:
    """VGG-19-BN; the trunk is identical for the "cifar" and "imagenet" stems."""
    return VGG(width=width)
