"""bench run on a real single-node Slurm cluster under faults, with no accounting database (the sacct stand-in
of local-cluster.sh is taken off PATH, as on a cluster without one): a cancelled poison job, a failed poison
job, a partition that does not exist. Skipped where Slurm is absent. About a minute and a half in all."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from slurm_cluster import slurm_cluster, slurm_dir  # noqa: F401 - the fixture

from benchmark.cli.main import main
from benchmark.dispatch.dispatch import DispatchOptions, dispatch
from benchmark.dispatch.ledger import read_ledger
from benchmark.dispatch.plan import make_plan
from benchmark.dispatch.slurm_settings import load_profile
from benchmark.dispatch.status import job_status
from benchmark.jobs.poison import poison_path

ROWS, COLUMNS = ["ap-t"], ["simclr", "moco"]  # one poison job, two victims after it
SUBSET = ["--grid", "motivation", "--scale", "smoke", "--rows", *ROWS, "--columns", *COLUMNS]


@pytest.fixture
def no_accounting(slurm_cluster, monkeypatch) -> dict[str, str]:  # noqa: F811
    """The environment of a cluster without accounting: plain sacct fails (no stand-in on PATH)."""
    shim = str(slurm_dir() / "bin")
    monkeypatch.setenv("PATH", os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if p != shim))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert subprocess.run(["sacct", "-j", "1"], capture_output=True).returncode != 0
    return dict(os.environ)


def _where(tmp_path: Path) -> list[str]:
    return ["--store", str(tmp_path / "store"), "--results", str(tmp_path / "res")]


def _plan(tmp_path: Path):
    return make_plan("motivation", "smoke", results=tmp_path / "res", store=tmp_path / "store", rows=ROWS,
                     columns=COLUMNS)


def _slurm_state(job_id: str) -> str:
    out = subprocess.run(["squeue", "-h", "-t", "all", "-j", job_id, "-o", "%T"], capture_output=True, text=True)
    return out.stdout.strip()


def _queued(ids: list[str]) -> set[str]:
    """Those of `ids` that Slurm still has pending or running."""
    out = subprocess.run(["squeue", "-h", "-r", "-o", "%i"], capture_output=True, text=True, check=True)
    return set(ids) & set(out.stdout.split())


def _ledger_id(tmp_path: Path, kind: str, timeout_s: float = 60) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for path in (tmp_path / "store" / "runs" / "smoke").glob("*.json"):
            entry = json.loads(path.read_text())
            if entry["kind"] == kind:
                return entry["job_id"]
        time.sleep(0.05)
    pytest.fail(f"no {kind} job submitted within {timeout_s} s")


def _ledger_ids(tmp_path: Path) -> dict[str, str]:
    """Job ids of the ledger: {"poison": id, <victim key>: id, ...}."""
    entries = [json.loads(p.read_text()) for p in (tmp_path / "store" / "runs" / "smoke").glob("*.json")]
    return {("poison" if e["kind"] == "poison" else e["job"]): e["job_id"] for e in entries}


def _assert_one_record_per_victim(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    assert plan.done == {j.key for j in plan.jobs}
    records = sorted(p.name for p in (tmp_path / "res" / "records" / "smoke").iterdir())
    assert records == sorted(f"{j.key[:20]}.json" for j in plan.jobs if j.kind == "victim")
    active = subprocess.run(["squeue", "-h", "-o", "%j"], capture_output=True, text=True).stdout.split()
    assert not [name for name in active if name.startswith(("poison-ap-t", "motivation-"))], active


def test_a_cancelled_poison_job_ends_bench_run_and_a_rerun_completes_every_cell(no_accounting, tmp_path: Path,
                                                                                capsys):
    """scancel of the running poison: the waiting `bench run` returns (its victims, which can never run, are
    cancelled) and says what is left and why; the next one completes every cell, one record per victim."""
    command = [sys.executable, "-m", "benchmark.cli.main", "run", *SUBSET, "--cluster", "slurm", "--profile", "local",
               *_where(tmp_path)]
    proc = subprocess.Popen(command, env=no_accounting, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        poison_id = _ledger_id(tmp_path, "poison")
        deadline = time.monotonic() + 60
        while _slurm_state(poison_id) != "RUNNING":
            assert time.monotonic() < deadline and _slurm_state(poison_id) in ("PENDING", "RUNNING", "CONFIGURING")
            time.sleep(0.05)
        subprocess.run(["scancel", poison_id], check=True)
        out, _ = proc.communicate(timeout=120)  # before: never returned (no accounting: the end was not seen)
    finally:
        if proc.poll() is None:  # leave nothing queued for the next test
            proc.kill()
            subprocess.run(["scancel", *_ledger_ids(tmp_path).values()], check=False)
    assert proc.returncode == 1, out
    victim_ids = [i for key, i in _ledger_ids(tmp_path).items() if key != "poison"]
    assert len(victim_ids) == 2 and not _queued(victim_ids), out  # cancelled (a pending task: gone at once)
    left = [line for line in out.splitlines() if line.strip().startswith("left:")]
    assert len(left) == 3 and "CANCELLED" in left[0], out  # the poison, then why its victims did not run
    assert all(f"blocked by {poison_id} CANCELLED" in line for line in left[1:]), out
    assert "Bypassing sacct error" not in out

    # the rerun: one `bench run` submits (and is gone), the next adopts its queued jobs and waits for them
    subs = dispatch(_plan(tmp_path), DispatchOptions("slurm", slurm=load_profile("local")),
                    store=tmp_path / "store", results=tmp_path / "res", wait=False)
    assert len(subs) == 3 and subs[0].handle.job_id != poison_id
    assert main(["run", *SUBSET, "--cluster", "slurm", "--profile", "local", *_where(tmp_path)]) == 0
    assert "submitted 0 jobs; now 3 of 3 jobs done" in capsys.readouterr().out  # no duplicate submitted
    assert {k: i for k, i in _ledger_ids(tmp_path).items()} == {
        ("poison" if s.job.kind == "poison" else s.job.key): str(s.handle.job_id) for s in subs}
    _assert_one_record_per_victim(tmp_path)


def test_a_failed_poison_blocks_its_victims_until_the_next_run_cancels_and_submits_them_again(
        no_accounting, tmp_path: Path, capsys):
    """The poison job fails (its file cannot be written); its victims, submitted with afterok and nobody
    waiting for them, are `blocked: <poison job> FAILED` in `bench status`; the next `bench run` cancels
    them and submits all three again, which completes the grid."""
    plan = _plan(tmp_path)
    poison = next(j for j in plan.jobs if j.kind == "poison")
    victims = [j for j in plan.jobs if j.kind == "victim"]
    obstacle = poison_path(poison.attack, tmp_path / "store")
    obstacle.mkdir(parents=True)  # a folder where the poison's file goes: saving it fails
    dispatch(plan, DispatchOptions("slurm", slurm=load_profile("local")), store=tmp_path / "store",
             results=tmp_path / "res", wait=False)
    poison_id = read_ledger(tmp_path / "store", "smoke", poison.key)["job_id"]
    deadline = time.monotonic() + 90
    while {job_status(v, plan, tmp_path / "store").state for v in victims} != {"blocked"}:
        assert time.monotonic() < deadline, [job_status(v, plan, tmp_path / "store") for v in victims]
        time.sleep(0.5)
    blocked_ids = [job_status(v, plan, tmp_path / "store").job_id for v in victims]
    assert _queued(blocked_ids) == set(blocked_ids)  # Slurm would keep them pending forever
    capsys.readouterr()
    assert main(["status", *SUBSET, *_where(tmp_path)]) == 0
    status = capsys.readouterr().out
    assert status.count(f"blocked: {poison_id} FAILED") == 2, status
    assert "1 failed" in status and "2 blocked" in status

    obstacle.rmdir()
    assert main(["run", *SUBSET, "--cluster", "slurm", "--profile", "local", *_where(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "cancelled 2 blocked job(s)" in out and "submitted 3 jobs; now 3 of 3 jobs done" in out, out
    assert not _queued(blocked_ids)
    _assert_one_record_per_victim(tmp_path)


def test_a_bad_partition_is_one_line_naming_the_valid_ones_and_leaves_nothing(no_accounting, tmp_path: Path,
                                                                              monkeypatch):
    run = ["run", *SUBSET, "--cluster", "slurm", "--partition", "nosuchpartition", *_where(tmp_path)]
    with pytest.raises(SystemExit) as err:
        main(run)
    message = str(err.value)
    assert "'nosuchpartition'" in message and "valid partitions (sinfo): debug" in message
    assert "\n" not in message
    store = tmp_path / "store"
    assert not store.exists() or not [p for p in store.rglob("*") if p.is_file()]

    import benchmark.dispatch.slurm_settings

    # sinfo cannot tell: sbatch refuses
    monkeypatch.setattr(benchmark.dispatch.slurm_settings, "partitions", lambda: None)
    with pytest.raises(SystemExit) as err:
        main(run)
    message = str(err.value)
    assert "Slurm refused" in message and "partition" in message.lower() and "nothing was submitted" in message
    assert "\n" not in message and "Traceback" not in message
    assert not store.exists() or not [p for p in store.rglob("*") if p.is_file()]  # no stray pickle
