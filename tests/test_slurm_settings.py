"""Slurm without a cluster: each job's default time limit and memory, the checks before submitting (with
stand-ins for sinfo and sacctmgr), and blocked jobs in `bench status` and `bench run` (with Slurm's answers
stood in for)."""
from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

import pytest

from benchmark.cli.main import main
from benchmark.dispatch import slurm_jobs
from benchmark.dispatch.plan import make_plan
from benchmark.dispatch.slurm_settings import check_submission, job_request, parse_minutes


def test_each_job_asks_for_time_and_memory_from_its_size_unless_told():
    smoke = make_plan("motivation", "smoke", rows=["ap-t"], columns=["simclr"])
    paper = make_plan("motivation", "paper", rows=["ap-t"], columns=["simclr"])
    for job in smoke.jobs:  # seconds of work: the floor
        assert job_request([job], {}) == {"timeout_min": 10, "mem_gb": 2}
    poison, victim = (next(j for j in paper.jobs if j.kind == k) for k in ("poison", "victim"))
    assert job_request([poison], {}) == {"timeout_min": 2 * 10 * 60 + 5, "mem_gb": 32}  # AP-T: ~10 GPU hours
    assert job_request([victim], {}) == {"timeout_min": 2 * 8 * 60 + 5, "mem_gb": 32}  # SimCLR: ~8
    assert job_request([poison, victim], {})["timeout_min"] == 1205  # an array: its largest job
    assert job_request([poison], {}, max_time_min=240)["timeout_min"] == 240  # the partition's limit
    assert job_request([poison], {"timeout_min": 45, "mem_gb": 3}) == {"timeout_min": 45, "mem_gb": 3}
    imagenet = make_plan("downstream", "paper", rows=["cp-s"])
    big = max(imagenet.jobs, key=lambda j: j.expected_minutes)
    assert job_request([big], {}) == {"timeout_min": 24 * 60, "mem_gb": 64}  # longer: requeued and resumed


def test_dry_run_on_slurm_prints_what_each_job_asks_for(tmp_path: Path, capsys):
    where = ["--store", str(tmp_path), "--results", str(tmp_path)]
    run = ["run", "--grid", "motivation", "--scale", "mini", "--rows", "ap-t", "--columns", "simclr", "--dry-run"]
    assert main([*run, "--cluster", "slurm", *where]) == 0
    out = capsys.readouterr().out
    assert "time (min)" in out and "mem (GB)" in out and "from the scale's job size" in out
    rows = [line.split() for line in out.splitlines() if line.startswith(("poison-", "victim-"))]
    assert [row[-2:] for row in rows] == [["65", "4"], ["53", "4"]]  # AP-T ~30 min at mini, SimCLR ~24
    assert main([*run, "--cluster", "slurm", "--time", "30", "--mem-gb", "3", *where]) == 0
    out = capsys.readouterr().out
    assert [line.split()[-2:] for line in out.splitlines() if line.startswith(("poison-", "victim-"))] == \
        [["30", "3"]] * 2 and "from --time or the profile" in out
    assert main([*run, "--cluster", "local", *where]) == 0
    assert "time (min)" not in capsys.readouterr().out  # only Slurm asks
    assert not list(tmp_path.iterdir())  # nothing submitted


def test_parse_minutes():
    assert [parse_minutes(t) for t in ("30", "30:00", "2:00:00", "1-00:00:00", "1-2", "0:30", "infinite", "")] \
        == [30, 30, 120, 1440, 1560, 1, None, None]


def _tool(folder: Path, name: str, script: str) -> None:
    path = folder / name
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o755)


def test_partition_account_qos_and_time_are_checked_before_submitting(tmp_path: Path, monkeypatch):
    _tool(tmp_path, "sinfo", "printf 'cpu|2:00:00\\ngpu*|1-00:00:00\\ncpu|2:00:00\\n'\n")
    _tool(tmp_path, "sacctmgr", 'case "$*" in *assoc*) printf "proj-a\\nproj-b\\n";; *qos*) printf "normal\\nhigh\\n";; '
                                "esac\n")
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert check_submission({}) == 1440  # the default partition's limit
    assert check_submission({"partition": "cpu", "account": "proj-b", "qos": "high"}) == 120
    for params, expected in (({"partition": "gpux"}, "no Slurm partition 'gpux'; valid partitions (sinfo): gpu, cpu"),
                             ({"partition": "cpu", "timeout_min": 500}, "over partition 'cpu''s limit of 120 min"),
                             ({"account": "proj-c"}, "no Slurm account 'proj-c' for this user; valid (sacctmgr): "
                                                     "proj-a, proj-b"),
                             ({"qos": "low"}, "valid (sacctmgr): high, normal")):
        with pytest.raises(SystemExit, match=expected.replace("(", r"\(").replace(")", r"\)")):
            check_submission(params)
    _tool(tmp_path, "sacctmgr", "echo 'Slurm accounting storage is disabled' >&2; exit 1\n")
    assert check_submission({"account": "anything", "qos": "any"}) == 1440  # no accounting: Slurm decides
    _tool(tmp_path, "sinfo", "exit 1\n")
    assert check_submission({"partition": "whatever"}) is None  # sinfo cannot tell: sbatch decides


def test_sacct_warnings_are_dropped():
    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    logger = logging.getLogger("submitit")
    handler = Keep()
    logger.addHandler(handler)
    try:
        slurm_jobs.quiet_sacct_warnings()
        slurm_jobs.quiet_sacct_warnings()  # once is enough; twice adds nothing
        logger.warning("Call #3 - Bypassing sacct error Command '['sacct', ...]' returned non-zero exit status 1.")
        logger.warning("something else")
    finally:
        logger.removeHandler(handler)
    assert records == ["something else"]


class _Handle:
    def __init__(self, job_id: str):
        self.job_id = job_id


class _SlurmFake:
    """An executor that records what is submitted with which dependency and request."""

    def __init__(self):
        self.params, self.submitted = {}, []

    def update_parameters(self, **params):
        self.params.update(params)

    def batch(self):
        return contextlib.nullcontext()

    def submit(self, call):
        dependency = self.params.get("slurm_additional_parameters", {}).get("dependency")
        self.submitted.append((call.job, dependency, self.params["timeout_min"], self.params["mem_gb"]))
        return _Handle(str(200 + len(self.submitted)))


def test_a_job_whose_poison_failed_is_blocked_then_cancelled_and_submitted_again_with_it(
        tmp_path: Path, monkeypatch, capsys):
    """Slurm stood in for: the poison job 11 ended CANCELLED; its victim 12 stays PENDING (Slurm's reason still
    `Dependency`, or already `DependencyNeverSatisfied`). Status shows the victim `blocked: 11 CANCELLED`; a run
    cancels 12 and submits the poison and the victim again, the victim after the new poison job."""
    from benchmark.dispatch import dispatch as d

    rows = ["--rows", "ap-t", "--columns", "simclr", "--store", str(tmp_path), "--results", str(tmp_path)]
    plan = make_plan("motivation", "smoke", results=tmp_path, store=tmp_path, rows=["ap-t"], columns=["simclr"])
    poison, victim = plan.jobs
    d.write_ledger(tmp_path, "smoke", poison, _Handle("11"), "slurm")
    d.write_ledger(tmp_path, "smoke", victim, _Handle("12"), "slurm")
    cancelled = []
    monkeypatch.setattr(slurm_jobs, "scancel", lambda ids: cancelled.extend(ids))
    for reason in ("Dependency", slurm_jobs.NEVER):
        answers = {"11": slurm_jobs.SlurmJob("CANCELLED"), "12": slurm_jobs.SlurmJob("PENDING", reason)}
        monkeypatch.setattr(slurm_jobs, "query", lambda ids: {i: answers[i] for i in ids if i in answers})
        assert main(["status", "--grid", "motivation", "--scale", "smoke", *rows]) == 0
        out = capsys.readouterr().out
        assert "blocked: 11 CANCELLED" in out and "1 blocked, 1 failed" in out, out
    answers["12"] = slurm_jobs.SlurmJob("PENDING", "Dependency")
    answers["11"] = slurm_jobs.SlurmJob("RUNNING")  # the poison still runs: its victim is only queued
    assert main(["status", "--grid", "motivation", "--scale", "smoke", *rows]) == 0
    out = capsys.readouterr().out
    assert "running (poison)" in out and "blocked:" not in out, out
    answers["11"] = slurm_jobs.SlurmJob("CANCELLED")

    fake = _SlurmFake()
    monkeypatch.setattr(d, "make_executor", lambda options, folder: fake)
    d.dispatch(plan, d.DispatchOptions("slurm"), store=tmp_path, results=tmp_path, wait=False)
    assert cancelled == ["12"]
    assert [(job.kind, dependency) for job, dependency, _, _ in fake.submitted] == \
        [("poison", None), ("victim", "afterok:201")]
    assert {(t, m) for _, _, t, m in fake.submitted} == {(10, 2)}  # the smoke scale's request
    assert "cancelled 1 blocked job(s)" in capsys.readouterr().out
