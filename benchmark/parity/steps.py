"""Step-level parity (issue 34, part 1): the same weights, images, delta and views given to their functions
and ours, for SimCLR, MoCo v2 (queue, key encoder, dual branch) and BYOL (EMA target):

- `loss_grad`: the loss and the encoder's parameter gradient of one training forward (train mode);
- `delta_grad`: the gradient with respect to delta in the perturbation turn (eval mode, dual branch), sample-
  and class-wise, and the momentum branch after it (MoCo's key encoder and queue, BYOL's target);
- `turn`: their `train_contrastive_poisoning` (encoder turn of `model_step` batches, perturbation turn of
  `num_steps` PGD steps per batch) over epochs of their per-epoch cosine, against the same steps of ours;
- `victim`: their `train_cl_baseline` (warm-up and cosine) against our Trainer.

Their numbers are written as goldens (`tests/golden/parity/`, with the inputs' fingerprint) by `bench parity
steps --write`; tests/test_parity_steps.py compares ours with them in CI, where the reference is absent.
Units: their delta lives in [-1, 1] (x eps), ours in pixels, so their delta = ours / 8 and their gradient =
ours x 8 at eps 8/255. One process on their side returns the full SimCLR gradient (its 4-process gather gives
each process a quarter; our `gradient_share` 0.25 emulates that), so ours x 4 is compared.
"""
from __future__ import annotations

import contextlib
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from attacks.base import frozen
from attacks.contrastive_poisoning import ClassWiseCP, SampleWiseCP, delta_gradient, poisoned
from attacks.delta_store import DeltaStore
from victims.algorithms import build_algorithm
from victims.architectures.resnet import resnet18
from victims.recipes import OFFICIAL
from victims.train import TrainConfig, Trainer

from . import fixtures as F

GOLDEN = Path(__file__).resolve().parents[2] / "tests" / "golden" / "parity"
STEPS_TABLE = Path(__file__).resolve().parents[2] / "results" / "parity" / "steps.md"
LR = {"simclr": 0.5, "moco": 0.3, "byol": 1.0}
SHARE = {"simclr": 4.0, "moco": 1.0, "byol": 1.0}  # their one-process gradient / ours (see the docstring)
DELTA_UNITS = 8.0  # pixels per unit of their delta at eps 8/255

CASES: list[dict] = (
    [{"name": f"loss_grad-{a}", "kind": "loss_grad", "algorithm": a} for a in ("simclr", "moco", "byol")]
    + [{"name": f"delta_grad-{a}-{per}", "kind": "delta_grad", "algorithm": a, "per": per}
       for a in ("simclr", "moco", "byol") for per in ("sample", "class")]
    + [{"name": "turn-simclr-sample", "kind": "turn", "algorithm": "simclr", "per": "sample", "num_steps": 3,
        "epochs": 4, "run_epochs": 2},
       {"name": "turn-simclr-class", "kind": "turn", "algorithm": "simclr", "per": "class", "num_steps": 1,
        "epochs": 4, "run_epochs": 2},
       {"name": "turn-moco-class", "kind": "turn", "algorithm": "moco", "per": "class", "num_steps": 1,
        "epochs": 4, "run_epochs": 2},
       {"name": "turn-moco-sample", "kind": "turn", "algorithm": "moco", "per": "sample", "num_steps": 3,
        "epochs": 4, "run_epochs": 2},
       {"name": "turn-byol-class", "kind": "turn", "algorithm": "byol", "per": "class", "num_steps": 1,
        "epochs": 4, "run_epochs": 2},
       {"name": "turn-byol-sample", "kind": "turn", "algorithm": "byol", "per": "sample", "num_steps": 1,
        "step_size": 0.02, "epochs": 4, "run_epochs": 2}]
    + [{"name": f"victim-{a}", "kind": "victim", "algorithm": a, "epochs": 4, "run_epochs": 2}
       for a in ("simclr", "moco", "byol")]
    # their README's launch: 4 processes; SimCLR's gradient there against ours with gradient_share 0.25
    + [{"name": "ddp4-simclr", "kind": "loss_grad_ddp", "algorithm": "simclr", "world": 4}]
    # the e2e harness's stand-in for that launch in one process (theirs.build's hook, `gradient_share` of each
    # parameter's gradient) over several steps of their loops, against ours at the official share 0.25
    + [{"name": "turn-simclr-sample-share", "kind": "turn", "algorithm": "simclr", "per": "sample", "num_steps": 3,
        "epochs": 4, "run_epochs": 2, "gradient_share": 0.25},
       {"name": "victim-simclr-share", "kind": "victim", "algorithm": "simclr", "epochs": 4, "run_epochs": 2,
        "gradient_share": 0.25}])

# max |ours - theirs| <= rtol * max |theirs| + atol, per quantity; a delta after a turn is compared as the share
# of entries off the other side's grid value (a gradient within float noise of 0 may take the other sign)
TOLERANCE = {"loss": (1e-5, 1e-9), "grad": (1e-5, 1e-9), "delta_grad": (1e-5, 1e-12), "state": (1e-5, 1e-9),
             "lr": (1e-12, 0.0), "losses": (1e-5, 1e-9)}
DELTA_MISMATCH = 0.0  # no entry of a delta after a turn may be half a step or more from theirs
# entries whose gradient is zero on one side only: none (the fixtures keep every poisoned pixel inside (0, 1),
# and the reference side has torch 1.x's clamp gradient at the eps bound, see theirs.torch1_clamp)
BOUNDARY_SHARE = 0.0


# Both sides compute in float64 (their code and ours follow the default dtype), so that agreement over several
# steps of a chaotic tiny network tests the arithmetic, not float32 rounding (in float32 one step agrees to
# ~1e-6 relative; four SimCLR steps at lr 0.5 spread that to ~1e-2 on both sides alike)
DTYPE = torch.float64


@contextlib.contextmanager
def default_dtype(dtype: torch.dtype = DTYPE):
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def our_algorithm(name: str, **override):
    """The fixtures' tiny network with the official heads and settings, weights from the fixtures' seed."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(F.SEED)
        encoder = resnet18(stem="cifar", width=F.WIDTH)
        sizes = {"simclr": {"temperature": 0.5, "out_dim": F.HEADS["out_dim"]},
                 "moco": {"temperature": 0.2, "queue_size": F.HEADS["moco_queue"], "momentum": F.HEADS["momentum"],
                          "out_dim": F.HEADS["out_dim"]},
                 "byol": {"momentum": F.HEADS["momentum"], "hidden_dim": F.HEADS["byol_hidden"],
                          "out_dim": F.HEADS["out_dim"]}}[name]
        return build_algorithm(name, encoder, F.CLASSES, **{**OFFICIAL[name], **sizes, **override})


def initial_states() -> dict[str, dict[str, torch.Tensor]]:
    with default_dtype():
        return {a: our_algorithm(a).state_dict() for a in ("simclr", "moco", "byol")}


def _store(case: dict, data: dict) -> DeltaStore:
    per_class = case.get("per") == "class"
    units = data["units_class"] if per_class else data["units_sample"]
    store = DeltaStore(len(units), tuple(units.shape[1:]), 8, case.get("step_size", 0.1) * DELTA_UNITS)
    store.units.copy_((units.to(torch.int32) * (store.q // 15)).to(store.dtype))  # k/120 of eps = k/15 px
    return store


def ours(case: dict, data: dict, *, dual_branch: bool = True, **override) -> dict[str, torch.Tensor]:
    """Our side of one case, in our names and their units (see the module docstring), in DTYPE; `override`
    changes our algorithm's settings and `dual_branch` the attack's (the tests' negative controls)."""
    with default_dtype():
        return _ours(case, data, dual_branch, override)


def _ours(case: dict, data: dict, dual_branch: bool, override: dict) -> dict[str, torch.Tensor]:
    torch.manual_seed(F.SEED)
    a = case["algorithm"]
    # over several steps their one-process run steps with SimCLR's full gradient: ours with gradient_share 1;
    # a case with `gradient_share` gives both sides that share (theirs through the e2e harness's hook)
    if case["kind"] in ("turn", "victim") and a == "simclr":
        override = {"gradient_share": case.get("gradient_share", 1.0), **override}
    alg = our_algorithm(a, **override)
    images, labels, index = data["images"], data["labels"], data["index"]
    store = _store(case, data)
    per_class = case.get("per") == "class"
    first = slice(0, F.BATCH)
    rows = (lambda ids, y: store.pixels(y)) if per_class else (lambda ids, y: store.pixels(ids))
    out: dict[str, torch.Tensor] = {}
    views = F.FixedViews()
    if case["kind"] in ("loss_grad", "loss_grad_ddp"):
        alg.train(case["kind"] == "loss_grad")  # their 4-process check runs in eval mode (see steps_ref)
        x = poisoned(images[first], rows(index[first], labels[first]))
        v1, v2 = views(torch.cat([x, x])).chunk(2)
        loss = alg(v1, v2)
        loss.backward()
        out["loss"] = loss.detach().reshape(1)
        share = SHARE[a] if case["kind"] == "loss_grad" else 1.0  # 4 processes: their gradient is the quarter
        out.update({f"grad.{k}": p.grad * share for k, p in alg.named_parameters() if p.grad is not None})
    elif case["kind"] == "delta_grad":
        with frozen(alg):
            delta = store.pixels() if per_class else store.pixels(index[first])
            grad, loss = delta_gradient(alg, views, images[first], delta, labels[first] if per_class else None,
                                        dual_branch=dual_branch)
        full = torch.zeros(store.units.shape) if not per_class else grad
        if not per_class:
            full[first] = grad
        out["loss"] = torch.tensor([loss])
        out["delta_grad"] = full * DELTA_UNITS * SHARE[a]
        out.update({f"state.{k}": v.detach().clone() for k, v in alg.state_dict().items()
                    if k.startswith(("key_", "queue", "target_"))})
    elif case["kind"] == "turn":
        attack = (ClassWiseCP if per_class else SampleWiseCP)()
        p = {"dual_branch": dual_branch, "gradient_precision": "float32", "num_steps": case.get("num_steps", 1)}
        config = TrainConfig(epochs=case["epochs"], batch_size=F.BATCH, lr=LR[a], warmup_epochs=0,
                             lr_schedule="epoch", amp=False, channels_last=False)
        trainer = Trainer(alg, config, views, "cpu", steps_per_epoch=F.BATCHES)
        lrs, losses = [], []
        batches = [torch.arange(s, s + F.BATCH) for s in range(0, len(images), F.BATCH)]
        for _ in range(case["run_epochs"]):
            model_losses = [trainer.train_step(poisoned(images[ids], rows(ids, labels[ids])), labels[ids])
                            for ids in batches]
            lrs.append(trainer.optimizer.param_groups[0]["lr"])
            noise_losses = []
            with frozen(alg):
                for ids in batches:
                    for _ in range(p["num_steps"]):
                        noise_losses.append(attack.perturbation_step(alg, views, store, images[ids], ids,
                                                                     labels[ids], p, False))
            losses += [sum(model_losses) / len(model_losses), sum(noise_losses) / len(noise_losses)]
        out["lr"], out["losses"] = torch.tensor(lrs, dtype=torch.float64), torch.tensor(losses, dtype=torch.float64)
        out["delta"] = store.pixels() / DELTA_UNITS
        out.update({f"state.{k}": v.detach().clone() for k, v in alg.state_dict().items()})
    elif case["kind"] == "victim":
        config = TrainConfig(epochs=case["epochs"], batch_size=F.BATCH, lr=LR[a], warmup_epochs=1,
                             warmup_start_lr=0.01, lr_schedule="epoch", amp=False, channels_last=False)
        trainer = Trainer(alg, config, views, "cpu", steps_per_epoch=F.BATCHES)
        losses = []
        for _ in range(case["run_epochs"]):
            step_losses = []
            for s in range(0, len(images), F.BATCH):
                x = images[s:s + F.BATCH].to(DTYPE).div(255)
                step_losses.append(trainer.step_on_views([views.view(x, 0), views.view(x, 1)],
                                                         labels[s:s + F.BATCH]))
            losses.append(sum(step_losses) / len(step_losses))
        out["losses"] = torch.tensor(losses, dtype=torch.float64)
        out["lr"] = torch.tensor([trainer.optimizer.param_groups[0]["lr"]], dtype=torch.float64)
        out.update({f"state.{k}": v.detach().clone() for k, v in alg.state_dict().items()})
    return out


def theirs_in_our_names(case: dict, raw: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Their outputs with our parameter names (gradients and states) and their delta as is."""
    a = case["algorithm"]
    out = {}
    for name, t in raw.items():
        kind, _, rest = name.partition(".")
        if kind in ("grad", "state"):
            mapped = F.from_theirs(a, {rest: t})
            out.update({f"{kind}.{k}": v for k, v in mapped.items()})
        else:
            out[name] = t
    return out


@dataclass
class Comparison:
    case: str
    quantity: str
    max_abs_diff: float
    scale: float
    tolerance: float
    ok: bool

    def row(self) -> list:
        return [self.case, self.quantity, f"{self.max_abs_diff:.2e}", f"{self.scale:.2e}", f"{self.tolerance:.2e}",
                "ok" if self.ok else "DIFFERS"]


def compare(case: dict, mine: dict[str, torch.Tensor], golden: dict[str, torch.Tensor]) -> list[Comparison]:
    """One Comparison per kind of quantity (all gradients together, all state tensors together, ...)."""
    missing = sorted(set(golden) ^ set(mine))
    if missing:
        return [Comparison(case["name"], f"names differ: {missing[:4]}", float("inf"), 0.0, 0.0, False)]
    groups: dict[str, list[str]] = {}
    for name in golden:
        groups.setdefault(name.partition(".")[0], []).append(name)
    results = []
    for kind, names in sorted(groups.items()):
        if kind == "delta":  # the share of entries a half step or more apart (our grid rounds BYOL's 0.02 step)
            diff = (mine["delta"].double() - golden["delta"].double()).abs()
            share = float((diff >= case.get("step_size", 0.1) / 2).double().mean())
            results.append(Comparison(case["name"], f"delta: share of entries off (max {float(diff.max()):.3f})",
                                      share, float(golden["delta"].abs().max()), DELTA_MISMATCH,
                                      share <= DELTA_MISMATCH))
            continue
        if kind == "delta_grad":  # where a side's clamp to [0, 1] cut the gradient, the other's may not have
            o, t = mine[kind].double(), golden[kind].double()
            one = (o == 0) ^ (t == 0)
            share = float(one.double().mean())
            results.append(Comparison(case["name"], "delta_grad: share zero on one side only", share, 0.0,
                                      BOUNDARY_SHARE, share <= BOUNDARY_SHARE))
            both = (o != 0) & (t != 0)
            rtol, atol = TOLERANCE[kind]
            diff, scale = float((o - t)[both].abs().max()), float(t.abs().max())
            results.append(Comparison(case["name"], "delta_grad where both nonzero", diff, scale,
                                      rtol * scale + atol, diff <= rtol * scale + atol))
            continue
        rtol, atol = TOLERANCE[kind]
        diff = max(float((mine[n].double() - golden[n].double()).abs().max()) for n in names)
        scale = max(float(golden[n].double().abs().max()) for n in names)
        tol = rtol * scale + atol
        results.append(Comparison(case["name"], f"{kind} ({len(names)} tensors)" if len(names) > 1 else kind,
                                  diff, scale, tol, diff <= tol))
    return results


def stored(t: torch.Tensor) -> torch.Tensor:
    """float32 for the goldens' large tensors (their rounding, ~6e-8 relative, is far below TOLERANCE);
    learning rates and loss histories stay float64."""
    return (t.float() if t.dtype == torch.float64 and t.numel() > 16 else t).contiguous()


def golden_path(case: dict) -> Path:
    return GOLDEN / f"{case['name']}.safetensors"


def load_golden(case: dict) -> tuple[dict[str, torch.Tensor], dict]:
    path = golden_path(case)
    from safetensors import safe_open
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    return load_file(str(path)), meta


def fingerprint_inputs() -> str:
    data = F.inputs()
    states = initial_states()
    flat = {**{f"data.{k}": v for k, v in data.items()},
            **{f"{a}.{k}": v for a, s in states.items() for k, v in s.items()}}
    return F.fingerprint(flat)


def steps_command(reference, *, write: bool = False, only: list[str] | None = None) -> int:
    """Run their side of every case, compare ours with it, print the table; with `write`, store the goldens."""
    from tabulate import tabulate

    from .e2e import run_reference

    cases = [c for c in CASES if not only or c["name"] in only]
    data = F.inputs()
    states = initial_states()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        torch.save({"data": data, "states": {a: F.to_theirs(a, s) for a, s in states.items()}}, workdir / "inputs.pt")
        raw = run_reference("steps", workdir, reference, {"cases": cases, "threads": 1,
                                                          "dtype": str(DTYPE).removeprefix("torch.")})
    rows, failed = [], 0
    fp = fingerprint_inputs()
    for case in cases:
        theirs = theirs_in_our_names(case, raw[case["name"]])
        results = compare(case, ours(case, data), theirs)
        failed += sum(not r.ok for r in results)
        rows += [r.row() for r in results]
        if write:
            GOLDEN.mkdir(parents=True, exist_ok=True)
            meta = {"case": json.dumps(case), "inputs": fp, "reference": "kaiwenzha/contrastive-poisoning@628838c "
                    "(kornia-pil c8b7b24)", "made_by": "bench parity steps --write"}
            new = {k: stored(v) for k, v in theirs.items()}
            if golden_path(case).is_file():  # the same numbers again: leave the file as it is
                old, old_meta = load_golden(case)
                if old_meta == meta and old.keys() == new.keys() and all(torch.equal(old[k], new[k]) for k in new):
                    continue
            save_file(new, str(golden_path(case)), metadata=meta)
    headers = ["case", "quantity", "max |ours - theirs|", "max |theirs|", "tolerance", ""]
    summary = f"{len(rows) - failed} of {len(rows)} comparisons within tolerance"
    print(tabulate(rows, headers=headers))
    print(summary + (f"; goldens written to {GOLDEN}" if write else ""))
    if write and not only:  # the record of the whole comparison (a subset would leave a partial table)
        from victims.atomic import write_text_atomic
        write_text_atomic(STEPS_TABLE, "# Step-level parity with the authors' code\n\nGenerated by `bench parity steps "
                          "--reference DIR --write` (float64 on a CPU; docs/parity.md explains each case).\n\n"
                          + tabulate(rows, headers=headers, tablefmt="github") + f"\n\n{summary}.\n")
    return 1 if failed else 0
