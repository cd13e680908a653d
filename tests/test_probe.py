"""Evaluation: the linear probe and kNN reach known accuracies on toy problems."""
from __future__ import annotations

import torch
from torch import nn

from victims.probe import ProbeConfig, knn_accuracy, linear_probe

COLOURS = torch.tensor([[220, 30, 30], [30, 220, 30], [30, 30, 220], [200, 200, 40]], dtype=torch.uint8)


def colour_images(per_class: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat images whose colour is the class (plus noise); average pooling makes them separable."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(4).repeat_interleave(per_class)
    noise = torch.randint(-20, 21, (len(labels), 3, 1, 1), generator=g)
    images = (COLOURS[labels].view(-1, 3, 1, 1).int() + noise).clamp(0, 255).to(torch.uint8).expand(-1, 3, 16, 16)
    return images.contiguous(), labels


class MeanColour(nn.Module):
    feature_dim = 3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


class RandomFeatures(nn.Module):
    """Features that ignore the image: nothing to learn."""

    feature_dim = 3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.randn(x.shape[0], 3)


def test_probe_separates_a_linearly_separable_toy_problem():
    train, test = colour_images(64, 0), colour_images(32, 1)
    for augment in (False, True):
        cfg = ProbeConfig(epochs=20, batch_size=64, lr=0.5, milestones=(15,), augment=augment)
        result = linear_probe(MeanColour(), *train, *test, num_classes=4, input_size=16, normalization="synthetic",
                              config=cfg)
        assert result.best_accuracy == 100.0 and result.final_accuracy == 100.0
        assert len(result.history) == 20


def test_probe_is_at_chance_without_signal():
    torch.manual_seed(0)
    train, test = colour_images(64, 0), colour_images(64, 1)
    cfg = ProbeConfig(epochs=5, batch_size=64, lr=0.5, milestones=(4,), augment=False)
    result = linear_probe(RandomFeatures(), *train, *test, num_classes=4, input_size=16, normalization="synthetic",
                          config=cfg)
    assert result.final_accuracy < 40  # chance is 25
    assert result.best_accuracy >= result.final_accuracy


def test_knn_votes_by_weighted_neighbours():
    train = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    labels = torch.tensor([0, 0, 1, 1])
    test = torch.tensor([[1.0, 0.05], [0.05, 1.0], [0.8, 0.3]])
    assert knn_accuracy(train, labels, test, torch.tensor([0, 1, 0]), 2, k=2) == 100.0
    assert knn_accuracy(train, labels, test, torch.tensor([1, 0, 1]), 2, k=2) == 0.0


class TinyMeanColour(MeanColour):
    """The same separable features shrunk to ~1e-6 on a large offset, as a random narrow network's can be."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 1.0 + 1e-6 * super().forward(x)


def test_standardized_probe_learns_features_too_small_for_the_raw_probe():
    train, test = colour_images(64, 0), colour_images(32, 1)
    results = {}
    for standardize in (False, True):
        cfg = ProbeConfig(epochs=20, batch_size=64, lr=0.5, milestones=(15,), augment=False, standardize=standardize)
        results[standardize] = linear_probe(TinyMeanColour(), *train, *test, num_classes=4, input_size=16,
                                            normalization="synthetic", config=cfg)
    assert results[True].best_accuracy == 100.0
    assert results[False].best_accuracy <= 50.0  # SGD cannot move on features this small


def test_standardized_probe_uses_the_same_statistics_with_augmentation():
    train, test = colour_images(64, 0), colour_images(32, 1)
    cfg = ProbeConfig(epochs=20, batch_size=64, lr=0.5, milestones=(15,), augment=True, standardize=True)
    result = linear_probe(TinyMeanColour(), *train, *test, num_classes=4, input_size=16, normalization="synthetic",
                          config=cfg)
    assert result.best_accuracy == 100.0
