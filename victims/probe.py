"""Evaluation of a frozen encoder: the paper's linear probe, a kNN classifier, supervised accuracy."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from .augment import eval_transform, probe_augment


@dataclass
class ProbeConfig:
    """The linear probe (paper: 100 epochs, SGD lr 1.0, momentum 0.9, no weight decay, batch 512,
    lr x0.2 at epochs 60/75/90, RandomResizedCrop + flip on the clean training set)."""

    epochs: int = 100
    lr: float = 1.0
    momentum: float = 0.9
    weight_decay: float = 0.0
    batch_size: int = 512
    milestones: tuple[int, ...] = (60, 75, 90)
    gamma: float = 0.2
    augment: bool = True  # False: features of un-augmented images, computed once (cheap, for CPU scales)
    # True: features centred and scaled per dimension with the clean training set's statistics before the
    # linear layer (an invertible affine map, so it changes no optimum, only how fast SGD gets there). The
    # paper probes raw features; a narrow random-weight network's features can be ~1e-6 in size, and SGD at
    # lr 1.0 then never leaves chance (seen: an untrained MobileNetV2 at width 0.125, probe 10%, kNN 26%).
    standardize: bool = False
    seed: int = 1112


@dataclass
class ProbeResult:
    best_accuracy: float  # the paper's protocol: best test accuracy over the probe epochs (selects on test)
    final_accuracy: float  # the last epoch's test accuracy
    history: list[float] = field(default_factory=list)


@torch.no_grad()
def extract_features(encoder: nn.Module, images: torch.Tensor, transform: nn.Module, device: torch.device | str,
                     batch_size: int = 512) -> torch.Tensor:
    """Features (N, D) of uint8 images through `transform` and the encoder in eval mode."""
    encoder.eval()
    out = []
    for start in range(0, len(images), batch_size):
        x = transform(images[start:start + batch_size].to(device))
        out.append(encoder(x.contiguous(memory_format=torch.channels_last)).float())
    return torch.cat(out)


def feature_statistics(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-dimension mean and standard deviation; a constant dimension gets scale 1 (it stays 0 once centred)."""
    mean, std = features.mean(0), features.std(0)
    return mean, torch.where(std > 0, std, torch.ones_like(std))


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return float((logits.argmax(1) == labels.to(logits.device)).float().mean()) * 100


def linear_probe(encoder: nn.Module, train_images: torch.Tensor, train_labels: torch.Tensor,
                 test_images: torch.Tensor, test_labels: torch.Tensor, *, num_classes: int, input_size: int,
                 normalization: str, config: ProbeConfig, device: torch.device | str = "cpu",
                 progress: bool = False) -> ProbeResult:
    """Train a linear layer on the frozen encoder's features of the training images; report test accuracy
    after every epoch. Images of another size are resized to `input_size` (downstream transfer);
    `normalization` names the data set whose statistics the encoder was trained with."""
    device = torch.device(device)
    encoder = encoder.to(device).eval()
    for p in encoder.parameters():
        p.requires_grad_(False)
    evaluate = eval_transform(input_size, normalization).to(device)
    test_features = extract_features(encoder, test_images, evaluate, device)
    test_labels = test_labels.to(device)
    cached = None if config.augment else extract_features(encoder, train_images, evaluate, device)
    mean, std = torch.zeros((), device=device), torch.ones((), device=device)
    if config.standardize:  # statistics of the un-augmented training features (one extra pass when augmenting)
        plain = cached if cached is not None else extract_features(encoder, train_images, evaluate, device)
        mean, std = feature_statistics(plain)
        test_features = (test_features - mean) / std
        cached = None if cached is None else (cached - mean) / std
        del plain
    augment = probe_augment(input_size, normalization).to(device)
    generator = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)
    head = nn.Linear(test_features.shape[1], num_classes).to(device)
    optimizer = torch.optim.SGD(head.parameters(), lr=config.lr, momentum=config.momentum,
                                weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.MultiStepLR(optimizer, list(config.milestones), config.gamma)
    history = []
    n = len(train_labels)
    for _ in tqdm(range(config.epochs), desc="linear probe", unit="epoch", disable=not progress, leave=False):
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, config.batch_size):
            batch = order[start:start + config.batch_size]
            if cached is not None:
                features = cached[batch.to(device)]
            else:
                with torch.no_grad():
                    x = augment(train_images[batch].to(device)).contiguous(memory_format=torch.channels_last)
                    features = (encoder(x).float() - mean) / std
            loss = F.cross_entropy(head(features), train_labels[batch].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        schedule.step()
        with torch.no_grad():
            history.append(accuracy(head(test_features), test_labels))
    return ProbeResult(best_accuracy=max(history), final_accuracy=history[-1], history=history)


@torch.no_grad()
def knn_accuracy(train_features: torch.Tensor, train_labels: torch.Tensor, test_features: torch.Tensor,
                 test_labels: torch.Tensor, num_classes: int, k: int = 200, temperature: float = 0.1,
                 chunk: int = 1024) -> float:
    """Weighted kNN on cosine similarity (weights exp(sim / temperature)), as in InstDisc / SimCLR repos."""
    train = F.normalize(train_features.float(), dim=1)
    test = F.normalize(test_features.float(), dim=1)
    train_labels = train_labels.to(train.device)
    k = min(k, len(train))
    correct = 0
    for start in range(0, len(test), chunk):
        sim, idx = (test[start:start + chunk] @ train.T).topk(k, dim=1)
        votes = torch.zeros(len(sim), num_classes, device=train.device)
        votes.scatter_add_(1, train_labels[idx], (sim / temperature).exp())
        correct += int((votes.argmax(1) == test_labels[start:start + chunk].to(train.device)).sum())
    return correct / len(test) * 100


@torch.no_grad()
def classifier_accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, input_size: int,
                        normalization: str, device: torch.device | str = "cpu", batch_size: int = 512) -> float:
    """Test accuracy of a supervised model (`model.logits`), images through the eval transform."""
    model = model.to(device).eval()
    evaluate = eval_transform(input_size, normalization).to(device)
    correct = 0
    for start in range(0, len(images), batch_size):
        x = evaluate(images[start:start + batch_size].to(device)).contiguous(memory_format=torch.channels_last)
        correct += int((model.logits(x).argmax(1) == labels[start:start + batch_size].to(device)).sum())
    return correct / len(images) * 100
