"""The training loop: schedule, losses fall, exact resume from a checkpoint, DDP = one process."""
from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from benchmark.data import make_synthetic
from victims.algorithms import build_algorithm
from victims.architectures import build_architecture
from victims.augment import contrastive_augment, supervised_augment
from victims.train import TrainConfig, fit, learning_rate

SETTINGS = {"simclr": {"out_dim": 16}, "moco": {"queue_size": 64, "out_dim": 16, "momentum": 0.9},
            "byol": {"hidden_dim": 64, "out_dim": 16, "momentum": 0.99}, "supervised": {}}


def make(name: str, seed: int = 0):
    torch.manual_seed(seed)
    return build_algorithm(name, build_architecture("resnet18", width=0.125), 10, **SETTINGS[name])


def augment_for(name: str):
    return supervised_augment(32, "synthetic") if name == "supervised" else contrastive_augment(32, "synthetic")


def test_per_step_schedule_warms_up_then_decays_to_the_floor():
    cfg = TrainConfig(epochs=10, batch_size=8, lr=0.5, warmup_epochs=2, lr_schedule="step")
    assert learning_rate(0, 10, cfg) == pytest.approx(0.01)
    assert learning_rate(20, 10, cfg) == pytest.approx(0.5)
    assert learning_rate(100, 10, cfg) == pytest.approx(0.5e-3)
    assert learning_rate(60, 10, cfg) == pytest.approx(0.5e-3 + (0.5 - 0.5e-3) * 0.5 * (1 + math.cos(math.pi / 2)))


def official_lr(epoch: int, batch: int, batches: int, cfg: TrainConfig) -> float:
    """The official util.py: adjust_learning_rate at each epoch's start (1-based), warmup_learning_rate
    per batch during the first warm_epochs, warmup_to = the cosine at warm_epochs."""
    eta_min = cfg.lr * cfg.final_lr_ratio
    lr = eta_min + (cfg.lr - eta_min) * (1 + math.cos(math.pi * epoch / cfg.epochs)) / 2
    if epoch <= cfg.warmup_epochs:
        warmup_to = eta_min + (cfg.lr - eta_min) * (1 + math.cos(math.pi * cfg.warmup_epochs / cfg.epochs)) / 2
        p = (batch + (epoch - 1) * batches) / (cfg.warmup_epochs * batches)
        lr = cfg.warmup_start_lr + p * (warmup_to - cfg.warmup_start_lr)
    return lr


@pytest.mark.parametrize("warmup", [0, 3])
def test_default_schedule_is_the_official_per_epoch_cosine(warmup):
    cfg = TrainConfig(epochs=20, batch_size=8, lr=0.5, warmup_epochs=warmup)
    assert cfg.lr_schedule == "epoch"
    for step in range(20 * 7):
        epoch, batch = step // 7 + 1, step % 7
        assert learning_rate(step, 7, cfg) == pytest.approx(official_lr(epoch, batch, 7, cfg)), step
    # constant within an epoch after the warm-up; the last epoch ends at the floor
    assert learning_rate(7 * 10, 7, cfg) == learning_rate(7 * 10 + 6, 7, cfg)
    assert learning_rate(7 * 20 - 1, 7, cfg) == pytest.approx(0.5e-3)


@pytest.mark.parametrize("name", ["simclr", "byol", "supervised"])
def test_loss_falls_on_smoke_data(name):
    data = make_synthetic("train", per_class=16)
    cfg = TrainConfig(epochs=5, batch_size=32, lr=0.1 if name == "supervised" else 0.3, warmup_epochs=1)
    losses = [h["loss"] for h in fit(make(name), data.images, data.labels, cfg, augment_for(name),
                                     progress=False).history]
    assert losses[-1] < losses[0] - 0.05, losses


def test_moco_loss_falls_below_chance_once_the_queue_holds_real_keys():
    data = make_synthetic("train", per_class=32)
    torch.manual_seed(0)
    # the textbook MoCo (batch-norm head, unscaled loss, per-step schedule): on this toy data the official
    # variant's BN-free head collapses, which says nothing about the queue this test is about
    moco = build_algorithm("moco", build_architecture("resnet18", width=0.125), 10, queue_size=64, out_dim=16,
                           momentum=0.9, temperature=0.5, head_batch_norm=True, base_temperature=None,
                           state_updates="step")
    cfg = TrainConfig(epochs=16, batch_size=32, lr=0.1, warmup_epochs=1, lr_schedule="step")
    losses = [h["loss"] for h in fit(moco, data.images, data.labels, cfg, augment_for("moco"),
                                     progress=False).history]
    # the first epoch scores against a random queue (easy negatives); from epoch 3 the queue holds real keys,
    # where a collapsed or untrained encoder scores log(queue + 1)
    assert losses[-1] < min(losses[2], math.log(65) - 0.05), losses


@pytest.mark.parametrize("name", ["moco", "byol"])
def test_interrupted_run_resumes_to_the_same_weights(name, tmp_path: Path):
    data = make_synthetic("train", per_class=8)
    cfg = TrainConfig(epochs=4, batch_size=16, lr=0.2, warmup_epochs=1, checkpoint_every=1)
    straight = make(name)
    fit(straight, data.images, data.labels, cfg, augment_for(name), progress=False)

    class Crash(Exception):
        pass

    def crash_after_two(epoch: int, entry: dict) -> None:
        if epoch == 2:
            raise Crash

    checkpoint = tmp_path / "victim.pt"
    with pytest.raises(Crash):
        fit(make(name), data.images, data.labels, cfg, augment_for(name), checkpoint=checkpoint,
            progress=False, on_epoch_end=crash_after_two)
    # the crash hit before epoch 2's checkpoint: the checkpoint holds epoch 1
    resumed = make(name, seed=123)  # different initial weights: everything must come from the checkpoint
    result = fit(resumed, data.images, data.labels, cfg, augment_for(name), checkpoint=checkpoint, progress=False)
    assert result.resumed_from_epoch == 1 and len(result.history) == 4
    for (key, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), key


def test_a_checkpoint_of_other_settings_or_data_is_not_resumed_but_one_of_other_logging_is(tmp_path: Path):
    data = make_synthetic("train", per_class=8)
    cfg = TrainConfig(epochs=2, batch_size=16, lr=0.2, warmup_epochs=1, checkpoint_every=1)
    checkpoint = tmp_path / "victim.pt"
    fit(make("simclr"), data.images, data.labels, cfg, augment_for("simclr"), checkpoint=checkpoint, progress=False)
    logging_only = replace(cfg, checkpoint_every=2, embedding_stats=8)
    result = fit(make("simclr"), data.images, data.labels, logging_only, augment_for("simclr"),
                 checkpoint=checkpoint, progress=False)
    assert result.resumed_from_epoch == 2
    with pytest.warns(UserWarning, match="other training settings or data"):
        result = fit(make("simclr"), data.images, data.labels, replace(cfg, epochs=3), augment_for("simclr"),
                     checkpoint=checkpoint, progress=False)
    assert result.resumed_from_epoch == 0 and len(result.history) == 3
    fewer = make_synthetic("train", per_class=6)
    with pytest.warns(UserWarning, match="other training settings or data"):
        result = fit(make("simclr"), fewer.images, fewer.labels, replace(cfg, epochs=3), augment_for("simclr"),
                     checkpoint=checkpoint, progress=False)
    assert result.resumed_from_epoch == 0


# Contiguous tensors: CPU batch norm in channels_last accumulates in float32, which makes the one-process
# reference itself less precise than the float64 statistics of GlobalBatchNorm. The one-step check compares
# the exact update at a large learning rate. Over many steps these tiny nets are chaotic: in one process, a
# 1e-6 relative perturbation of the weights moves the loss by 1e-3 after 3 steps and 1-4% after 5-15 steps
# (measured at lr 0.002, width 0.125 to 0.5), so the curve is compared with that tolerance, and against the
# gap that other augmentations make.
CURVE = TrainConfig(epochs=3, batch_size=16, lr=0.002, warmup_epochs=0, channels_last=False)
ONE_STEP = TrainConfig(epochs=1, batch_size=64, lr=0.2, warmup_epochs=0, channels_last=False)


def _ddp_worker(rank: int, world: int, init_file: str, name: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    data = make_synthetic("train", per_class=8)
    one_step = make(name)
    fit(one_step, data.images, data.labels, ONE_STEP, augment_for(name), progress=False)
    history = fit(make(name), data.images, data.labels, CURVE, augment_for(name), progress=False).history
    if rank == 0:
        torch.save({"losses": [h["loss"] for h in history], "state": one_step.state_dict()}, out)
    dist.destroy_process_group()


@pytest.mark.parametrize("name", ["simclr", "moco"])
def test_two_processes_match_one_process_with_the_same_global_batch(name, tmp_path: Path):
    out = str(tmp_path / "ddp.pt")
    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "init"), name, out), nprocs=2, join=True)
    ddp = torch.load(out, weights_only=True)
    torch.set_num_threads(1)
    data = make_synthetic("train", per_class=8)
    # one process, the same global batch, the same views (two augmentation chunks, as two processes make)
    one_step = make(name)
    fit(one_step, data.images, data.labels, replace(ONE_STEP, view_chunks=2), augment_for(name), progress=False)
    initial = make(name).state_dict()
    for key, value in one_step.state_dict().items():  # after one step: the same update, to float precision
        if value.is_floating_point() and "running" not in key and "queue" not in key:
            update = (value - initial[key]).norm()
            assert (value - ddp["state"][key]).norm() <= 1e-2 * update + 1e-7, key
    curve = replace(CURVE, view_chunks=2)
    losses = [h["loss"] for h in fit(make(name), data.images, data.labels, curve, augment_for(name),
                                     progress=False).history]
    # the curve: within 3%. After the first steps the two runs drift apart as chaotically as two runs of one
    # process whose weights differ by 1e-6 (the exact check is the one-step update above). Measured: gaps
    # summed over the 3 epochs ~0.12 for DDP against 0.05 to 0.33 between two seeds of views, and first-epoch
    # gaps from 3e-4 to 1e-2 depending on the views drawn, so tighter curve checks are coin tosses.
    assert losses == pytest.approx(ddp["losses"], rel=3e-2)


def test_a_record_written_before_a_setting_existed_counts_with_the_value_then_in_effect():
    from victims.train import outcome_settings

    now = outcome_settings(TrainConfig(epochs=2, batch_size=8, lr=0.1))
    older = {k: v for k, v in now.items() if k not in ("grad_clip", "lr_schedule")}
    # written before grad_clip and lr_schedule existed: no clipping (the same) but a per-step cosine (not)
    assert outcome_settings(older) != now
    assert outcome_settings({**older, "lr_schedule": "epoch"}) == now
    assert outcome_settings({**older, "lr_schedule": "epoch", "grad_clip": 5.0}) != now
