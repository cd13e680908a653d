"""ResNet-18/50 feature extractors built from torchvision's BasicBlock / Bottleneck."""
from __future__ import annotations

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck


def scaled(channels: int, width: float) -> int:
    """Channel count `channels` scaled by the width multiplier (at least 1)."""
    return max(1, round(channels * width))


def init_conv_bn_(model: nn.Module) -> None:
    """Kaiming-normal (fan_out, ReLU) conv weights, zero conv biases, BN weight 1 / bias 0."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class ResNet(nn.Module):
    """Stem + 4 stages (planes 64/128/256/512 x width) + global average pooling; no classifier.

    The "cifar" stem is a 3x3 stride-1 conv without max-pool; the "imagenet" stem is
    the usual 7x7 stride-2 conv followed by a 3x3 stride-2 max-pool.
    """

    def __init__(self, block: type[BasicBlock | Bottleneck], layers: list[int], *, stem: str, width: float):
        super().__init__()
        self.inplanes = scaled(64, width)
        if stem == "cifar":
            conv = nn.Conv2d(3, self.inplanes, 3, stride=1, padding=1, bias=False)
            pool: nn.Module = nn.Identity()
        else:
            conv = nn.Conv2d(3, self.inplanes, 7, stride=2, padding=3, bias=False)
            pool = nn.MaxPool2d(3, stride=2, padding=1)
        self.stem = nn.Sequential(conv, nn.BatchNorm2d(self.inplanes), nn.ReLU(inplace=True), pool)
        self.layer1, self.layer2, self.layer3, self.layer4 = (
            self._stage(block, scaled(planes, width), n, stride)
            for planes, n, stride in zip((64, 128, 256, 512), layers, (1, 2, 2, 2))
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.feature_dim: int = self.inplanes
        init_conv_bn_(self)

    def _stage(self, block: type[BasicBlock | Bottleneck], planes: int, n: int, stride: int) -> nn.Sequential:
        out = planes * block.expansion
        downsample = None
        if stride != 1 or self.inplanes != out:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, out, 1, stride=stride, bias=False), nn.BatchNorm2d(out)
            )
        blocks = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = out
        blocks += [block(out, planes) for _ in range(n - 1)]
        return nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.pool(x), 1)


def resnet18(*, stem: str = "cifar", width: float = 1.0) -> ResNet:
    """ResNet-18: BasicBlock [2, 2, 2, 2]; 512*width features."""
    return ResNet(BasicBlock, [2, 2, 2, 2], stem=stem, width=width)


def resnet50(*, stem: str = "cifar", width: float = 1.0) -> ResNet:
    """ResNet-50: Bottleneck [3, 4, 6, 3]; 2048*width features."""
    return ResNet(Bottleneck, [3, 4, 6, 3], stem=stem, width=width)
