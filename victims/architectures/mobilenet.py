"""MobileNetV2 feature extractor: torchvision's MobileNetV2 with the classifier removed."""
from __future__ import annotations

from torch import nn
from torchvision.models import MobileNetV2

# t (expansion), c (channels), n (repeats), s (first stride) -- torchvision's default table.
_IMAGENET_SETTING = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2], [6, 96, 3, 1], [6, 160, 3, 2], [6, 320, 1, 1]]


def mobilenetv2(*, stem: str = "cifar", width: float = 1.0) -> MobileNetV2:
    """MobileNetV2 with `width_mult=width`; `forward` returns the pooled `last_channel` features.

    The "cifar" stem uses a stride-1 first conv and stride 1 (not 2) in the second stage
    (the usual CIFAR convention, total stride 8); the "imagenet" stem is torchvision's (stride 32).
    Channels are rounded to multiples of 8 and `last_channel` is 1280*max(1, width) as in
    torchvision, so `feature_dim` stays 1280 for width <= 1.
    """
    setting = [row.copy() for row in _IMAGENET_SETTING]
    if stem == "cifar":
        setting[1][3] = 1
    model = MobileNetV2(width_mult=width, inverted_residual_setting=setting)
    if stem == "cifar":
        model.features[0][0].stride = (1, 1)  # 3x3 conv with padding 1: keeps the resolution
    model.classifier = nn.Identity()
    model.feature_dim = model.last_channel
    return model
