"""Does the CP attacker's encoder learn, or collapse, under its optimiser settings? Trains the attacker's
model of a scale on clean training images with the CP encoder schedule (per-epoch cosine over `--epochs`,
a linear warm-up of `--warmup-epochs`) and prints, every 10 steps, its loss and the spread of its
normalised embeddings over the batch (mean over dimensions of the standard deviation across images:
about 1/sqrt(dim) for embeddings spread over the sphere, 0 when every image maps to one vector).

    python benchmark/scripts/attacker_collapse.py --algorithm moco --warmup-epochs 0 --steps 160
    python benchmark/scripts/attacker_collapse.py --algorithm moco --warmup-epochs 3 --steps 160

For MoCo v2 a collapsed encoder's loss sits at log(1 + queue) x temperature / 0.07 (19.81 at the mini
scale's queue of 1024). docs/evidence.md ("The MoCo v2 attacker") quotes its output.
"""
from __future__ import annotations

import argparse
import time
from dataclasses import replace

import torch
import torch.nn.functional as F

from attacks.contrastive_poisoning import BatchStream
from benchmark.jobs.splits import load_split
from benchmark.scales import get_scale
from victims.augment import contrastive_augment, to_float
from victims.recipes import build_model
from victims.train import Trainer


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--algorithm", default="moco", choices=["simclr", "moco", "byol"])
    p.add_argument("--scale", default="mini")
    p.add_argument("--dataset", default="cifar10")
    p.add_argument("--epochs", type=int, default=30, help="length of the cosine schedule (CP-S at mini: 30)")
    p.add_argument("--warmup-epochs", type=int, default=0, help="linear warm-up (official CP: 0)")
    p.add_argument("--steps", type=int, default=160, help="encoder steps to run")
    p.add_argument("--data-root", default=None, help="folder holding the data sets (default: $BENCH_DATA)")
    p.add_argument("--seed", type=int, default=1112)
    args = p.parse_args()

    data = load_split(get_scale(args.scale), args.dataset, "train", data_root=args.data_root)
    model, config, size = build_model(args.algorithm, "resnet18", args.scale, len(data.classes),
                                      data.images.shape[-1], seed=args.seed)
    config = replace(config, epochs=args.epochs, warmup_epochs=args.warmup_epochs, lr_schedule="epoch",
                     seed=args.seed)
    trainer = Trainer(model, config, contrastive_augment(size, args.dataset), "cpu",
                      steps_per_epoch=len(data.images) // config.batch_size)
    stream = BatchStream(len(data.images), config.batch_size, args.seed)
    print(f"{args.algorithm} at the {args.scale} scale: lr {config.lr}, warm-up {args.warmup_epochs} epochs of "
          f"{trainer.steps_per_epoch} steps, cosine over {args.epochs}")
    started = time.perf_counter()
    for step in range(1, args.steps + 1):
        ids = stream.next()
        images = data.images[ids]
        loss = trainer.train_step(images, data.labels[ids])
        if step % 10 == 0:
            with torch.no_grad():  # one augmented view of the batch, as the loss sees it
                z = F.normalize(model.embed(trainer.views(to_float(images), step)[0]), dim=1)
            print(f"step {step:4d}  lr {trainer.optimizer.param_groups[0]['lr']:.3f}  loss {loss:7.3f}  "
                  f"embedding spread {float(z.std(0).mean()):.4f}  ({time.perf_counter() - started:.0f} s)",
                  flush=True)


if __name__ == "__main__":
    main()
