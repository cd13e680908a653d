"""The reference side of the step-level comparisons (run by refside in the reference's subprocess): their
AttackModel, losses, CP loop and victim loop on the fixtures' inputs, with the weights our side starts from.
"""
from __future__ import annotations

from pathlib import Path

import torch

from . import fixtures as F
from . import theirs

ALG = {"simclr": "SimCLR", "moco": "MoCov2", "byol": "BYOL"}


class Batches:
    """A loader of fixed batches in a fixed order (their loop needs len() and iter())."""

    def __init__(self, batches):
        self.batches = batches

    def __len__(self):
        return len(self.batches)

    def __iter__(self):
        return iter(self.batches)


def their_model(case: dict, state: dict, delta: torch.Tensor):
    opt = theirs.options({"cl_alg": ALG[case["algorithm"]], "opt": {
        "batch_size": F.BATCH, "size": F.SIDE, "n_cls": F.CLASSES, "dataset_size": F.BATCH * F.BATCHES,
        "epochs": case.get("epochs", 1), "classwise": case.get("per") == "class",
        "samplewise": case.get("per") != "class", "model_step": case.get("model_step", F.BATCHES),
        "noise_step": case.get("noise_step", F.BATCHES), "num_steps": case.get("num_steps", 1),
        "step_size": case.get("step_size", 0.1), "allow_mmt_grad": case["kind"] != "victim", "moco_k": F.HEADS["moco_queue"],
        "moco_dim": F.HEADS["out_dim"], "moco_m": F.HEADS["momentum"], "baseline": case["kind"] == "victim",
        "warm": case["kind"] == "victim", "warm_epochs": 1, "warmup_from": 0.01}})
    task = {"width": F.WIDTH, "byol": {"hidden_dim": F.HEADS["byol_hidden"], "out_dim": F.HEADS["out_dim"],
                                       "momentum": F.HEADS["momentum"]},
            "gradient_share": case.get("gradient_share", 1.0)}  # the e2e harness's emulated 4-process launch
    # their SimCLR builds ResNetWithHead(arch) with its default 128-d output: the fixtures' head is smaller
    base = theirs.REF["resnet"].ResNetWithHead
    theirs.REF["model"].ResNetWithHead = lambda arch, **kw: base(arch=arch, **{"feat_dim": F.HEADS["out_dim"], **kw})
    model, criterion = theirs.build(opt, task)
    model.module.initialize_delta(input_delta=delta.clone())
    if opt.baseline:
        model.module.delta.requires_grad = False
    missing, unexpected = model.module.load_state_dict(state, strict=False)
    if [m for m in missing if m != "delta"] or unexpected:
        raise RuntimeError(f"state dict mismatch: missing {missing}, unexpected {unexpected}")
    model.module.transform = F.FixedViews()
    return opt, model, criterion


def loss_of(opt, output, criterion):
    util = theirs.REF["util"]
    if opt.cl_alg == "SimCLR":
        return criterion(torch.cat(util.GatherLayer.apply(output["features"]), dim=0))
    if opt.cl_alg == "BYOL":
        return criterion(*output["output"])
    return criterion(output["moco_logits"])


def _ddp_worker(rank: int, world: int, root: str, workdir: str, case: dict, data: dict, state: dict) -> None:
    """One of `world` processes of their launch (gloo on a CPU): its slice of the batch, their GatherLayer and
    DDP's gradient averaging; eval mode, so that batch norm does not depend on the slice (their CP turn
    normalises per GPU)."""
    import torch.distributed as dist

    theirs.load_reference(Path(root))
    dist.init_process_group("gloo", init_method=f"file://{workdir}/pg_ddp", world_size=world, rank=rank)
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float64)
    util = theirs.REF["util"]
    local = F.BATCH // world
    part = slice(rank * local, (rank + 1) * local)
    units = data["units_sample"]
    opt, model, criterion = their_model(case, state, units.float() / 120)
    views = F.FixedViews()
    views.flip, views.gain, views.batch = views.flip[:, part], views.gain[:, part], local
    model.module.transform = views
    model.eval()
    util.set_model_backbone_grad(opt.cl_alg, model, flag=True)
    model.module.delta.requires_grad = False
    images = data["images"].to(torch.float64).div(255)
    loss = loss_of(opt, model(images[part], data["index"][part], labels=data["labels"][part]), criterion)
    loss.backward()
    if rank == 0:
        out = {"loss": loss.detach().reshape(1)}
        out.update({f"grad.{k}": p.grad.detach().clone() for k, p in model.module.named_parameters()
                    if p.grad is not None})
        torch.save(out, Path(workdir) / "ddp.pt")
    dist.destroy_process_group()


def run_ddp(case: dict, data: dict, state: dict, workdir: Path) -> dict[str, torch.Tensor]:
    import torch.multiprocessing as mp

    (workdir / "pg_ddp").unlink(missing_ok=True)
    mp.spawn(_ddp_worker, args=(case["world"], str(theirs.ROOT), str(workdir), case, data, state),
             nprocs=case["world"], join=True)
    return torch.load(workdir / "ddp.pt", weights_only=True)


def run_case(case: dict, data: dict, state: dict) -> dict[str, torch.Tensor]:
    util, main = theirs.REF["util"], theirs.REF["main"]
    torch.manual_seed(F.SEED)
    images = data["images"].to(torch.get_default_dtype()).div(255)
    labels, index = data["labels"], data["index"]
    units = data["units_class"] if case.get("per") == "class" else data["units_sample"]
    opt, model, criterion = their_model(case, state, units.float() / 120)
    m = model.module
    out: dict[str, torch.Tensor] = {}
    first = slice(0, F.BATCH)
    if case["kind"] in ("loss_grad", "delta_grad"):  # one forward and backward of a turn, as their loop sets it
        encoder_turn = case["kind"] == "loss_grad"  # train mode, gradient to the encoder; else eval, to delta
        model.train(encoder_turn)
        util.set_model_backbone_grad(opt.cl_alg, model, flag=encoder_turn)
        m.delta.requires_grad = not encoder_turn
        loss = loss_of(opt, model(images[first], index[first], labels=labels[first]), criterion)
        loss.backward()
        out["loss"] = loss.detach().reshape(1)
    if case["kind"] == "loss_grad":
        out.update({f"grad.{k}": p.grad.detach().clone() for k, p in m.named_parameters() if p.grad is not None})
    elif case["kind"] == "delta_grad":
        out["delta_grad"] = m.delta.grad.detach().clone()
    elif case["kind"] == "turn":  # their train_contrastive_poisoning, `epochs` epochs of the schedule
        optim = main.set_optimizer(opt, model)
        batches = Batches([(images[s:s + F.BATCH], labels[s:s + F.BATCH], index[s:s + F.BATCH])
                           for s in range(0, len(images), F.BATCH)])
        iterator, lrs, losses = iter(batches), [], []
        for epoch in range(1, case["run_epochs"] + 1):
            util.adjust_learning_rate(opt, optim["optimizer"], epoch)
            lrs.append(optim["optimizer"].param_groups[0]["lr"])
            loss, delta_loss, iterator = main.train_contrastive_poisoning(
                batches, iterator, model, criterion, optim["optimizer"], optim["delta_optimizer"], epoch, opt)
            losses += [loss, delta_loss]
        out["lr"], out["losses"] = torch.tensor(lrs, dtype=torch.float64), torch.tensor(losses, dtype=torch.float64)
        out["delta"] = m.delta.detach().clone()
    elif case["kind"] == "victim":  # their train_cl_baseline on fixed views, with their warm-up and cosine
        optimizer = torch.optim.SGD(m.backbone.parameters(), lr=opt.learning_rate, momentum=opt.momentum,
                                    weight_decay=opt.weight_decay)
        views = F.FixedViews()
        batches = Batches([([views.view(images[s:s + F.BATCH], 0), views.view(images[s:s + F.BATCH], 1)],
                            labels[s:s + F.BATCH], index[s:s + F.BATCH]) for s in range(0, len(images), F.BATCH)])
        losses = []
        for epoch in range(1, case["run_epochs"] + 1):
            util.adjust_learning_rate(opt, optimizer, epoch)
            losses.append(main.train_cl_baseline(batches, model, criterion, optimizer, epoch, opt))
        out["losses"] = torch.tensor(losses, dtype=torch.float64)
        out["lr"] = torch.tensor([optimizer.param_groups[0]["lr"]], dtype=torch.float64)
    # the state after: every tensor of the model after a turn or victim steps; the momentum branch (MoCo's key
    # encoder and queue, BYOL's target) after a perturbation gradient
    momentum = ("backbone.encoder_k", "backbone.queue", "backbone.momentum_")
    for k, v in m.state_dict().items():
        if k != "delta" and (case["kind"] in ("turn", "victim") or
                             (case["kind"] == "delta_grad" and k.startswith(momentum))):
            out[f"state.{k}"] = v.detach().clone()
    return out


def main(name: str, workdir: Path, task: dict, ref) -> int:
    torch.set_default_dtype(getattr(torch, task.get("dtype", "float32")))
    data = torch.load(workdir / "inputs.pt", weights_only=True)
    results = {}
    for case in task["cases"]:
        if case["kind"] == "loss_grad_ddp":
            results[case["name"]] = run_ddp(case, data["data"], data["states"][case["algorithm"]], workdir)
        else:
            results[case["name"]] = run_case(case, data["data"], data["states"][case["algorithm"]])
    torch.save(results, workdir / "outputs.pt")
    return 0
