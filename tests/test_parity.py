"""Parity with the authors' code (docs/parity.md): ours against the goldens their code computed
(tests/golden/parity/), negative controls showing the comparison catches a change, and the reference checks."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from benchmark.parity import fixtures as F
from benchmark.parity import reference as R
from benchmark.parity import steps as S

DATA = F.inputs()


def _golden(case):
    if not S.golden_path(case).is_file():
        pytest.fail(f"missing golden {S.golden_path(case)}: make it with `bench parity steps --write --reference DIR`")
    golden, meta = S.load_golden(case)
    assert json.loads(meta["case"]) == case, "the golden was made for another case: write the goldens again"
    return golden, meta


def test_goldens_were_made_from_these_inputs():
    fp = S.fingerprint_inputs()
    for case in S.CASES:
        _, meta = _golden(case)
        assert meta["inputs"] == fp, (f"{case['name']}: the inputs (fixtures, initial weights) changed since the "
                                      "goldens were made; write them again with the reference")


@pytest.mark.parametrize("case", S.CASES, ids=[c["name"] for c in S.CASES])
def test_ours_matches_the_authors_code(case):
    golden, _ = _golden(case)
    results = S.compare(case, S.ours(case, DATA), golden)
    bad = [r.row() for r in results if not r.ok]
    assert results and not bad, f"differs from the authors' code: {bad}"


def _case(name):
    return next(c for c in S.CASES if c["name"] == name)


@pytest.mark.parametrize("name, change, quantity", [
    ("delta_grad-moco-sample", {"dual_branch": False}, "delta_grad where both nonzero"),  # key view detached
    ("loss_grad-simclr", {"base_temperature": None}, "loss"),  # the textbook loss, not x T / 0.07
    ("turn-moco-class", {"state_updates": "step"}, "state (250 tensors)"),  # key encoder moved after steps only
    ("victim-byol", {"momentum": 0.999}, "state (267 tensors)"),  # another EMA
    ("ddp4-simclr", {"gradient_share": 1.0}, "grad (64 tensors)"),  # not their 4-process quarter gradient
    ("victim-simclr-share", {"gradient_share": 1.0}, "state (124 tensors)"),  # the harness's hook not matched
])
def test_the_comparison_catches_a_departure(name, change, quantity):
    case = _case(name)
    golden, _ = _golden(case)
    results = {r.quantity: r for r in S.compare(case, S.ours(case, DATA, **change), golden)}
    assert not results[quantity].ok, f"{change} went unnoticed: {results[quantity].row()}"


def test_the_delta_comparison_counts_entries_off_by_a_step():
    case = _case("turn-simclr-class")
    golden, _ = _golden(case)
    mine = S.ours(case, DATA)
    mine["delta"] = mine["delta"].clone()
    mine["delta"].view(-1)[:10] += 0.1  # ten entries a step off
    row = next(r for r in S.compare(case, mine, golden) if r.quantity.startswith("delta"))
    assert not row.ok and row.max_abs_diff == pytest.approx(10 / mine["delta"].numel())


def test_state_names_map_both_ways():
    for algorithm in ("simclr", "moco", "byol"):
        state = S.initial_states()[algorithm]
        back = F.from_theirs(algorithm, F.to_theirs(algorithm, state))
        assert back.keys() == state.keys() and all(torch.equal(back[k], state[k]) for k in state)
    moco = F.to_theirs("moco", S.initial_states()["moco"])
    assert moco["backbone.queue"].shape == (F.HEADS["out_dim"], F.HEADS["moco_queue"])


def test_fixed_views_agree_between_both_ways_of_calling():
    x = DATA["images"][:F.BATCH].double() / 255
    both = F.FixedViews()(torch.cat([x, x]))
    views = F.FixedViews()
    assert torch.equal(both, torch.cat([views(x), views(x)]))


def test_torch1_clamp_passes_the_gradient_at_the_bounds():
    """The reference side's clamp (theirs.torch1_clamp), run in a subprocess as the harness runs it."""
    code = ("import torch; from benchmark.parity.theirs import torch1_clamp; torch1_clamp(); "
            "d = torch.tensor([1.0, -1.0, 0.5, 1.5, -2.0], requires_grad=True); y = torch.clamp(d, -1.0, 1.0); "
            "y.sum().backward(); z = d.clamp(-1.0, 1.0); "
            "print(y.tolist(), d.grad.tolist(), z.tolist())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[1.0, -1.0, 0.5, 1.0, -1.0] [1.0, 1.0, 1.0, 0.0, 0.0] [1.0, -1.0, 0.5, 1.0, -1.0]"


# ---- the reference checkout is checked before anything runs


def _fake_checkout(tmp_path, monkeypatch, with_pil=True):
    root = tmp_path / "ref"
    root.mkdir()
    files = {}
    for name in R.FILES:
        (root / name).write_text(f"# {name}\n")
        files[name] = R.blob_id(root / name)
    monkeypatch.setattr(R, "FILES", files)
    if with_pil:
        pil = {}
        for name in R.KORNIA_PIL_FILES:
            path = root / "kornia-pil" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"# {name}\n")
            pil[name] = R.blob_id(path)
        (root / "kornia-pil" / "kornia" / "__init__.py").write_text("")
        monkeypatch.setattr(R, "KORNIA_PIL_FILES", pil)
    return root


def test_blob_id_is_gits(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"hello\n")
    assert R.blob_id(path) == "ce013625030ba8dba906f756967f9e9ca394464a"  # git hash-object


def test_reference_accepted(tmp_path, monkeypatch):
    root = _fake_checkout(tmp_path, monkeypatch)
    assert R.locate(root).root == root.resolve()


@pytest.mark.parametrize("problem, message", [
    ("missing", "is not a folder"), ("empty", "not a checkout of the authors' code"),
    ("other commit", "is not commit 628838c"), ("no kornia-pil", "lacks its kornia-pil submodule"),
    ("other kornia-pil", "is not kornia-pil at c8b7b24"), ("unset", "no reference given")])
def test_reference_refused_with_what_to_fetch(tmp_path, monkeypatch, problem, message):
    monkeypatch.delenv("CP_REFERENCE", raising=False)
    root = _fake_checkout(tmp_path, monkeypatch, with_pil=problem != "no kornia-pil")
    if problem == "missing":
        root = tmp_path / "absent"
    elif problem == "empty":
        root = tmp_path / "empty"
        root.mkdir()
    elif problem == "other commit":
        (root / "main.py").write_text("# changed\n")
    elif problem == "other kornia-pil":
        (root / "kornia-pil" / "kornia" / "version.py").write_text("# another\n")
    with pytest.raises(R.ReferenceError, match=message) as err:
        R.locate(None if problem == "unset" else root)
    assert "git" in str(err.value)  # says what to fetch or check out


def test_bench_parity_refuses_a_bad_reference_and_writes_nothing(tmp_path, capsys):
    from benchmark.cli.main import main

    store = tmp_path / "store"
    assert main(["--store", str(store), "parity", "poison", "--reference", str(tmp_path / "nope")]) == 2
    assert "not a folder" in capsys.readouterr().err and not store.exists()


# ---- end to end: their runs take our mini settings; the table pairs records as documented


def test_their_cp_runs_take_our_mini_budget():
    from benchmark.parity.e2e import cp_task

    cps, _ = cp_task("cp-s", "simclr")
    assert cps["cl_alg"] == "SimCLR" and cps["width"] == 0.125 and cps["release_epoch"] == 24
    assert cps["opt"] | {"epochs": 30, "batch_size": 256, "samplewise": True, "classwise": False, "model_step": 39,
                         "noise_step": 39, "num_steps": 5, "step_size": 0.1, "learning_rate": 0.5,
                         "temp": 0.5} == cps["opt"]
    cpc, _ = cp_task("cp-c", "moco")
    assert cpc["opt"]["moco_k"] == 1024 and cpc["opt"]["allow_mmt_grad"] and cpc["warmup_steps"] == 120
    assert (cpc["opt"]["model_step"], cpc["opt"]["noise_step"], cpc["opt"]["epochs"]) == (10, 10, 40)
    assert cp_task("cp-c", "moco", warmup=False)[0]["warmup_steps"] == 0
    assert cp_task("cp-c", "simclr")[0]["warmup_steps"] == 0
    byol, _ = cp_task("cp-s", "byol")
    assert byol["byol"] == {"hidden_dim": 512, "out_dim": 128, "momentum": 0.99}


def _record(folder, name, attack, algorithm, seed, probe, *, poison_algorithm=None, reference=False):
    folder.mkdir(parents=True, exist_ok=True)
    poison = {"algorithm": poison_algorithm} if poison_algorithm else None
    record = {"attack": attack, "victim": {"dataset": "cifar10", "arch": "resnet18", "algorithm": algorithm,
                                           "seed": seed, "poison": poison},
              "metrics": {"cifar10": {"probe_best": probe}}}
    if reference:
        record["trained_by"] = "reference"
    (folder / f"{name}.json").write_text(json.dumps(record))


def test_parity_table_pairs_each_trainer_with_its_own_clean_victim(tmp_path):
    from benchmark.parity.report import damage, load_rows, table
    from benchmark.jobs.seeds import Measurement

    ours, parity = tmp_path / "ours", tmp_path / "parity"
    _record(ours, "u", "none", "untrained", 1112, 20.0)
    for seed, clean in ((1112, 50.0), (1113, 52.0)):
        _record(ours, f"c{seed}", "none", "simclr", seed, clean)
    _record(ours, "s", "cp-c", "simclr", 1112, 35.0, poison_algorithm="simclr")
    _record(parity, "t1", "ext:ref-cp-c-simclr", "simclr", 1112, 40.0)  # their poison, our victim
    _record(parity, "t2", "ext:ref-cp-c-simclr", "simclr", 1113, 42.0)
    _record(parity, "r0", "none", "simclr", 1112, 60.0, reference=True)  # their clean victim
    _record(parity, "r1", "cp-c", "simclr", 1112, 45.0, poison_algorithm="simclr", reference=True)
    rows = load_rows(ours, parity)
    text = table(rows)
    line = next(li for li in text.splitlines() if li.startswith("| CP-C made with SimCLR | ours | ours |"))
    assert "| 35.0 |" in line and line.endswith("| 0.50 |")  # (50 - 35) / (50 - 20), paired with seed 1112
    line = next(li for li in text.splitlines() if li.startswith("| CP-C made with SimCLR | theirs | ours |"))
    assert "41.0 ± 1.4 (2 seeds)" in line and "0.32 ± 0.01 (2 seeds)" in line  # (50-40)/30 and (52-42)/32
    line = next(li for li in text.splitlines() if li.startswith("| CP-C made with SimCLR | ours | theirs |"))
    assert "| 45.0 | 60.0 |" in line and line.endswith("| 0.38 |")  # against their own clean victim
    assert "| CP-S made with SimCLR | theirs | ours | - |" in text
    assert not damage(Measurement(), Measurement((1.0,), (1,)), 0.0).n  # nothing measured: no damage


def test_their_end_to_end_simclr_runs_get_the_gradient_share_of_their_4_process_launch():
    """Run in one process their SimCLR gets the whole batch's gradient; their README's 4-process launch gives
    each parameter a quarter (GatherLayer + DDP averaging), which our SimCLR emulates: the tasks say so, and
    the harness scales their parameters' gradients by it (theirs.build)."""
    from benchmark.parity.e2e import cp_task, launch_share

    assert launch_share("simclr") == 0.25 and launch_share("moco") == launch_share("byol") == 1.0
    assert cp_task("cp-s", "simclr")[0]["gradient_share"] == 0.25
    assert cp_task("cp-c", "moco")[0]["gradient_share"] == 1.0


def test_a_changed_reference_task_does_not_resume_the_old_runs_checkpoints(tmp_path, monkeypatch):
    import json

    from benchmark.parity import e2e

    work = tmp_path / "ref-cp-s-simclr"
    work.mkdir()
    (work / "task.json").write_text(json.dumps({"opt": {"epochs": 30}}))
    (work / "checkpoint.pt").write_bytes(b"old")
    (work / "inputs.pt").write_bytes(b"images")

    def fake_run(cmd, **kwargs):
        torch.save({"ok": True}, work / "outputs.pt")
        return type("Done", (), {"returncode": 0})()

    monkeypatch.setattr(e2e.subprocess, "run", fake_run)
    out = e2e.run_reference("cp", work, type("R", (), {"root": tmp_path})(), {"opt": {"epochs": 30},
                                                                            "gradient_share": 0.25})
    assert out == {"ok": True} and not (work / "checkpoint.pt").exists() and (work / "inputs.pt").is_file()
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("ref-cp-s-simclr.superseded-")]
    assert len(aside) == 1 and (aside[0] / "checkpoint.pt").read_bytes() == b"old"
    e2e.run_reference("cp", work, type("R", (), {"root": tmp_path})(), {"opt": {"epochs": 30},
                                                                        "gradient_share": 0.25})
    assert len([p for p in tmp_path.iterdir() if "superseded" in p.name]) == 1  # the same task resumes
