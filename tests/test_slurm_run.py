"""bench run on a real single-node Slurm cluster (started by the fixture; skipped where Slurm is absent)."""
from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from slurm_cluster import slurm_cluster  # noqa: F401 - the fixture

from benchmark.cli import main
from benchmark.plan import make_plan
from benchmark.poison_job import poison_path

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
    capsys.readouterr()
    assert main(["run", *SUBSET, "--cluster", "slurm", "--profile", "local", *where]) == 0
    assert "submitted 0 jobs" in capsys.readouterr().out
