"""bench run on a real single-node Slurm cluster (started by the fixture; skipped where Slurm is absent)."""
from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from slurm_cluster import slurm_cluster  # noqa: F401 - the fixture

from benchmark.cli.main import main
from benchmark.dispatch.plan import make_plan
from benchmark.jobs.poison import poison_path

SUBSET = ["--grid", "effectiveness", "--rows", "none", "random", "--columns", "cifar10/simclr", "cifar10/moco",
          "--scale", "smoke"]


def test_a_grid_runs_to_completion_on_slurm_in_dependency_order(slurm_cluster, tmp_path: Path, capsys):  # noqa: F811
    where = ["--store", str(tmp_path / "store"), "--results", str(tmp_path / "res")]
    assert main(["run", *SUBSET, "--cluster", "slurm", "--profile", "local", *where]) == 0
    plan = make_plan("effectiveness", "smoke", results=tmp_path / "res", store=tmp_path / "store",
                     rows=["none", "random"], columns=["cifar10/simclr", "cifar10/moco"])
    assert len(plan.jobs) == 5 and plan.done == {j.key for j in plan.jobs}
    records = [json.loads(p.read_text()) for p in (tmp_path / "res" / "records" / "smoke").glob("*.json")]
    assert len(records) == 4
    poison = next(j for j in plan.jobs if j.kind == "poison")
    poison_done_at = poison_path(poison.attack, tmp_path / "store").stat().st_mtime
    for record in records:
        if record["attack"] == "random":  # started after the poison file was complete
            started = datetime.fromisoformat(record["created"]).timestamp() - record["timing"]["total_s"]
            assert started >= poison_done_at - 1, (started, poison_done_at)
    ledgers = [json.loads(p.read_text()) for p in (tmp_path / "store" / "runs" / "smoke").glob("*.json")]
    assert {entry["cluster"] for entry in ledgers} == {"slurm"} and len(ledgers) == 5
    arrays = {}  # job arrays (ids 12_0, 12_1): one per dependency (the clean victims; those after the poison)
    for entry in ledgers:
        array, _, task = entry["job_id"].partition("_")
        assert task.isdigit() == (entry["kind"] == "victim"), entry  # a lone poison job is no array
        arrays.setdefault(array, []).append(entry["kind"])
    assert sorted(map(sorted, arrays.values())) == [["poison"], ["victim", "victim"], ["victim", "victim"]]
    capsys.readouterr()
    assert main(["run", *SUBSET, "--cluster", "slurm", "--profile", "local", *where]) == 0
    assert "submitted 0 jobs" in capsys.readouterr().out


def test_a_job_past_its_time_limit_is_requeued_and_resumes_from_its_checkpoint(slurm_cluster, tmp_path: Path,  # noqa: F811
                                                                                 monkeypatch):
    """A CP-C poison job of 80 short epochs (30 s to 80 s of work) under a 1-minute limit, signalled 20 s before
    it (each run gets ~25 s, imports included): submitit requeues it (as often as needed) and
    the second run resumes from the epoch the first one checkpointed (every second here)."""
    import subprocess

    from attacks.spec import AttackSpec
    from benchmark.dispatch.dispatch import DispatchOptions, dispatch
    from benchmark.dispatch.plan import Job, Plan
    from benchmark.dispatch.slurm_settings import load_profile
    from benchmark.jobs.poison import poison_report

    monkeypatch.setenv("BENCH_CHECKPOINT_EVERY_S", "1")  # the job inherits the environment (sbatch --export=ALL)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    spec = AttackSpec("cp-c", "cifar10", "simclr", "resnet18", scale="smoke",
                      params={"epochs": 80, "model_step": 2, "noise_step": 2})
    plan = Plan("custom", "smoke", cells=[], jobs=[Job("poison", spec.key, attack=spec)])
    profile = {**load_profile("local"), "timeout_min": 1, "signal_delay_s": 20}
    store = tmp_path / "store"
    (submission,) = dispatch(plan, DispatchOptions("slurm", slurm=profile), store=store, results=tmp_path / "res")
    result = submission.handle.result()
    report = poison_report(spec, store)
    log = Path(submission.handle.paths.stdout).read_text()
    assert result["resumed_from_epoch"] > 0, log
    assert report["resumed_from_epoch"] == result["resumed_from_epoch"]
    assert [h["epoch"] for h in report["history"]] == list(range(1, 81))  # each epoch once: none redone
    info = subprocess.run(["scontrol", "-o", "show", "job", str(submission.handle.job_id)], capture_output=True,
                          text=True).stdout
    assert "Restarts=0" not in info, info
    assert f"resumed from the checkpoint of epoch {result['resumed_from_epoch']}" in log
