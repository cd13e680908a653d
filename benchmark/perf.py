"""`bench perf train`: throughput of our training step against the usual PIL + DataLoader pipeline, and
the step's achieved FLOP rate against a dense matrix-multiply peak, all measured in the same run."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from torch.utils.flop_counter import FlopCounterMode

from victims.algorithms import build_algorithm
from victims.architectures import build_architecture
from victims.augment import contrastive_augment
from victims.normalization import normalization_for
from victims.train import Trainer

from .scales import get_scale
from .victim_job import default_device, load_split


class PilViews(Dataset):
    """torchvision's usual recipe: uint8 HWC arrays -> PIL image -> two transformed views per item."""

    def __init__(self, images: torch.Tensor, size: int, dataset: str):
        from torchvision import transforms as T

        self.images = np.ascontiguousarray(images.permute(0, 2, 3, 1).numpy())
        mean, std = normalization_for(dataset)
        self.transform = T.Compose([
            T.RandomResizedCrop(size, scale=(0.2, 1.0)), T.RandomHorizontalFlip(),
            T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8), T.RandomGrayscale(p=0.2),
            T.ToTensor(), T.Normalize(mean, std)])

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        from PIL import Image

        image = Image.fromarray(self.images[i])
        return self.transform(image), self.transform(image)


@dataclass
class PerfResult:
    ours_images_per_s: float
    reference_images_per_s: float
    step_gflop: float
    achieved_gflops: float
    matmul_peak_gflops: float
    batch_size: int
    device: str

    @property
    def ratio(self) -> float:
        return self.ours_images_per_s / self.reference_images_per_s


def matmul_peak(device: torch.device, n: int = 2048, repeats: int = 10) -> float:
    """GFLOP/s of a dense float32 (bfloat16 on CUDA) n x n matrix multiply."""
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    _sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    _sync(device)
    return 2 * n**3 * repeats / (time.perf_counter() - start) / 1e9


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def perf_train(algorithm: str = "simclr", arch: str = "resnet18", scale_name: str = "mini", *, steps: int = 5,
               batch_size: int | None = None, data_root=None, store=None, device=None,
               workers: int | None = None) -> PerfResult:
    """Images per second of our step (uint8 on the device, kornia views, channels_last, AMP on CUDA) and of
    the reference (PIL transforms in a DataLoader with `workers` processes, same model, batch, optimiser)."""
    scale = get_scale(scale_name)
    device = torch.device(device) if device else default_device()
    config = scale.train[algorithm]
    if batch_size:
        config = type(config)(**{**config.__dict__, "batch_size": batch_size})
    source = scale.source("cifar10")
    data = load_split(scale, "cifar10", "train", data_root=data_root, store=store)
    needed = config.batch_size * (steps + 1)
    images = data.images[torch.arange(needed) % len(data)]
    labels = data.labels[torch.arange(needed) % len(data)]

    def model():
        torch.manual_seed(0)
        encoder = build_architecture(arch, stem=source.stem, width=scale.width)
        return build_algorithm(algorithm, encoder, data.num_classes, **scale.algorithm_settings.get(algorithm, {}))

    trainer = Trainer(model(), config, contrastive_augment(source.input_size, "cifar10"), device, steps_per_epoch=10**6)
    gpu_images = images.to(device)
    batches = [slice(i * config.batch_size, (i + 1) * config.batch_size) for i in range(steps + 1)]
    trainer.train_step(gpu_images[batches[0]], labels[batches[0]].to(device))  # warm-up
    _sync(device)
    start = time.perf_counter()
    for b in batches[1:]:
        trainer.train_step(gpu_images[b], labels[b].to(device))
    _sync(device)
    ours = steps * config.batch_size / (time.perf_counter() - start)

    flops = FlopCounterMode(display=False)
    with flops:
        trainer.train_step(gpu_images[batches[0]], labels[batches[0]].to(device))
    step_flop = flops.get_total_flops()

    reference = model().to(device)
    optimizer = torch.optim.SGD([p for p in reference.parameters() if p.requires_grad], lr=config.lr,
                                momentum=config.momentum, weight_decay=config.weight_decay)
    workers = os.cpu_count() if workers is None else workers
    loader = DataLoader(PilViews(images, source.input_size, "cifar10"), batch_size=config.batch_size,
                        shuffle=True, num_workers=workers, drop_last=True, persistent_workers=workers > 0)
    reference.train()
    count, start = 0, None
    for i, (v1, v2) in enumerate(loader):
        loss = reference(v1.to(device), v2.to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        reference.on_step_end()
        if i == 0:  # the first batch pays for starting the workers
            _sync(device)
            start = time.perf_counter()
        else:
            count += len(v1)
    _sync(device)
    reference_rate = count / (time.perf_counter() - start)
    step_seconds = config.batch_size / ours
    return PerfResult(ours, reference_rate, step_flop / 1e9, step_flop / step_seconds / 1e9, matmul_peak(device),
                      config.batch_size, str(device))
