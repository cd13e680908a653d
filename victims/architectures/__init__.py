"""Victim encoder architectures: name -> feature extractor returning (B, feature_dim) vectors.

Every built model has no classifier head; `forward(x)` returns globally average-pooled
features and the model carries an int attribute `feature_dim`.
"""
from __future__ import annotations

from typing import Callable

from torch import nn

from ..plugins import GROUPS
from ..registry import Registry, UnknownNameError
from .densenet import densenet121
from .mobilenet import mobilenetv2
from .resnet import resnet18, resnet50
from .vgg import vgg19

__all__ = ["ARCHITECTURES", "STEMS", "UnknownNameError", "arch_names", "build_architecture"]

STEMS: tuple[str, ...] = ("cifar", "imagenet")
"""'cifar': for 32x32 inputs (3x3 stride-1 first conv, no early pooling); 'imagenet': 224x224."""

ARCHITECTURES: Registry[Callable[..., nn.Module]] = Registry("architecture")
for _name, _builder in [
    ("resnet18", resnet18),
    ("resnet50", resnet50),
    ("vgg19", vgg19),
    ("densenet121", densenet121),
    ("mobilenetv2", mobilenetv2),
]:
    ARCHITECTURES.register(_name)(_builder)
del _name, _builder


def _adopt_architecture(name: str, obj: object) -> Callable[..., nn.Module]:
    """A plugin's entry point object: a builder `f(*, stem, width) -> nn.Module` with a `feature_dim`."""
    if not callable(obj) or (isinstance(obj, type) and not issubclass(obj, nn.Module)):
        raise TypeError(f"an architecture entry point must name a builder f(*, stem, width) -> nn.Module, "
                        f"not {obj!r}")
    return obj


ARCHITECTURES.plugins_from(GROUPS["architecture"], _adopt_architecture)  # the five above are built-in


def arch_names() -> list[str]:
    """The registered architecture names."""
    return ARCHITECTURES.names()


def build_architecture(name: str, *, stem: str = "cifar", width: float = 1.0) -> nn.Module:
    """Build architecture `name` with the given stem and channel-width multiplier.

    Raises `UnknownNameError` for an unknown name and `ValueError` for a bad stem or width.
    """
    builder = ARCHITECTURES.get(name)
    if stem not in STEMS:
        raise ValueError(f"unknown stem {stem!r}; valid stems: {', '.join(STEMS)}")
    if not width > 0:
        raise ValueError(f"width must be positive, got {width!r}")
    return builder(stem=stem, width=float(width))
