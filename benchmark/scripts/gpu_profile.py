"""Where a training step's time goes on a GPU: two kornia views, the model's forward+backward on ready views,
and the whole step, at the paper's batch (generated images). Usage: python benchmark/scripts/gpu_profile.py"""
from __future__ import annotations

import time

import torch

from victims.recipes import build_model
from benchmark.jobs.perf import synthetic_like
from victims.augment import contrastive_augment, to_float
from victims.train import Trainer


def timed(fn, repeats: int = 10) -> float:
    fn()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    device, batch = torch.device("cuda"), 512
    data = synthetic_like(32, batch)
    x = data.images[:batch].to(device)
    y = data.labels[:batch].to(device)
    augment = contrastive_augment(32, "cifar10").to(device)
    model, config, _ = build_model("simclr", "resnet18", "paper", 10, 32, seed=0)
    trainer = Trainer(model, config, augment, device, steps_per_epoch=10**6)
    views = trainer.views(to_float(x), salt=0)

    def forward_backward():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = trainer.model(*views)
        trainer.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        trainer.optimizer.step()

    t_views = timed(lambda: trainer.views(to_float(x), salt=1))
    t_one_view = timed(lambda: augment(to_float(x)))
    t_model = timed(forward_backward)
    t_step = timed(lambda: trainer.train_step(x, y))
    xf = to_float(x)
    parts = [(type(m).__name__, timed(lambda m=m: m(xf))) for m in augment.augs.children()]
    print(f"batch {batch} on {torch.cuda.get_device_name()}:")
    for name, t in parts:
        print(f"  kornia {name:23s} {1000 * t:8.1f} ms")
    for name, t in (("one kornia view", t_one_view), ("two views (trainer.views)", t_views),
                    ("model forward+backward+SGD", t_model), ("whole train_step", t_step)):
        print(f"  {name:30s} {1000 * t:8.1f} ms  ({batch / t:9.0f} images/s)")


if __name__ == "__main__":
    main()
