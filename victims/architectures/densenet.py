"""DenseNet-121 feature extractor: torchvision's DenseNet with the classifier removed."""
from __future__ import annotations

from torch import nn
from torchvision.models import DenseNet

from .resnet import scaled


def densenet121(*, stem: str = "cifar", width: float = 1.0) -> DenseNet:
    """DenseNet-121 (growth 32*width, blocks 6/12/24/16, 64*width initial features).

    `forward` returns the pooled features (1024 dims at width 1); `feature_dim` holds that
    size. The "cifar" stem swaps the 7x7 stride-2 conv0 for a 3x3 stride-1 conv and drops
    the max-pool (pool0); the "imagenet" stem is torchvision's.
    """
    init = scaled(64, width)
    model = DenseNet(growth_rate=scaled(32, width), block_config=(6, 12, 24, 16), num_init_features=init)
    feature_dim = model.classifier.in_features
    model.classifier = nn.Identity()
    if stem == "cifar":
        model.features.conv0 = nn.Conv2d(3, init, 3, stride=1, padding=1, bias=False)
        nn.init.kaiming_normal_(model.features.conv0.weight)  # as torchvision's DenseNet init
        model.features.pool0 = nn.Identity()
    model.feature_dim = feature_dim
    return model
