"""The real single-node Slurm cluster (slurm/local-cluster.sh) and submitit on it.

Skipped where Slurm/munge are not installed (`bash slurm/install-deps.sh`). About 45 s in all, most of it
the time-out/requeue test (Slurm's time-limit check and the requeued job's cred_expire wait).

About submitit's sacct warnings: the local cluster has no accounting database, so plain `sacct` fails
and submitit (submitit/core/core.py, InfoWatcher.update) logs "Bypassing sacct error ..., status may be
inaccurate" at WARNING on every poll; it has no other way to read job states (no squeue/scontrol
fallback): the state stays "UNKNOWN", and `job.result()`/`job.done()` only return once the job has
written its result pickle. A job killed before that (scancel, SIGKILL, OOM) then looks unfinished forever.
Two remedies: (1) the `slurm_cluster` fixture puts `$SLURM_LOCAL_DIR/bin` first on PATH; `local-cluster.sh
up` writes a `sacct` stand-in there that answers submitit's exact query from squeue (finished jobs stay
there for MinJobAge=300 s), so states are real and nothing is logged (the tests below check that);
(2) to only silence the warning: `SUBMITIT_LOG_LEVEL=ERROR` in the environment before submitit is
imported, or `logging.getLogger("submitit").setLevel(logging.ERROR)`; sacct's own stderr line
"Slurm accounting storage is disabled" still appears (submitit does not capture it), and the
UNKNOWN-state problem stays.
"""
from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from slurm_cluster import auto_executor_parameters, load_profile, slurm_cluster  # noqa: F401 (fixture)

FINAL_STATES = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED"}


def _run(*cmd: str) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=30).stdout


def _job_fields(job_id: str) -> dict[str, str]:
    """`scontrol show job -o ID` as a dict (finished jobs stay listed for MinJobAge=300 s)."""
    line = _run("scontrol", "show", "job", "-o", job_id)
    return dict(tok.split("=", 1) for tok in line.split() if "=" in tok)


def _wait_final(job_id: str, timeout_s: float) -> dict[str, str]:
    deadline = time.monotonic() + timeout_s
    while True:
        fields = _job_fields(job_id)
        if fields.get("JobState") in FINAL_STATES:
            return fields
        if time.monotonic() > deadline:
            pytest.fail(f"job {job_id} not finished after {timeout_s} s: {fields}")
        time.sleep(0.25)


def test_sinfo_shows_debug_partition_with_idle_node(slurm_cluster: Path) -> None:
    out = _run("sinfo", "-h", "-p", "debug", "-o", "%P|%a|%l|%t|%N").strip()
    partition, avail, limit, state, node = out.split("|")
    assert partition == "debug*"  # * = default partition
    assert (avail, limit, node) == ("up", "infinite", _run("hostname", "-s").strip())
    busy = _run("squeue", "-h", "-t", "R,CG").strip()
    assert state == "idle" or (busy and state in {"mix", "alloc"}), out


def test_sbatch_wrap_runs_to_completed(slurm_cluster: Path, tmp_path: Path) -> None:
    t0 = time.monotonic()
    job_id = _run("sbatch", "--parsable", "-p", "debug", "-o", str(tmp_path / "hi-%j.out"), "--wrap", "echo hi")
    job_id = job_id.strip().split(";")[0]
    fields = _wait_final(job_id, timeout_s=30)
    assert fields["JobState"] == "COMPLETED", fields
    assert fields["ExitCode"] == "0:0"
    assert (tmp_path / f"hi-{job_id}.out").read_text().strip() == "hi"
    assert time.monotonic() - t0 < 30


def _executor(folder: Path, **overrides):
    submitit = pytest.importorskip("submitit")
    executor = submitit.AutoExecutor(folder=folder, cluster="slurm")
    params = auto_executor_parameters(load_profile("local"))
    params.update(overrides)
    executor.update_parameters(**params)
    return executor


def _final_state(job, timeout_s: float = 30) -> str:
    """The job's Slurm state once it is no longer pending, running or completing (or at the timeout)."""
    deadline = time.monotonic() + timeout_s
    while True:
        state = job.get_info(mode="force").get("State")
        if state not in {"PENDING", "RUNNING", "COMPLETING", None} or time.monotonic() > deadline:
            return state
        time.sleep(0.5)


def test_submitit_runs_functions_on_the_cluster(slurm_cluster: Path, tmp_path: Path, caplog) -> None:
    import operator

    caplog.set_level(logging.WARNING, logger="submitit")
    executor = _executor(tmp_path, timeout_min=5)
    assert executor.cluster == "slurm"
    job = executor.submit(operator.mul, 6, 7)
    jobs = executor.map_array(pow, [2, 3], [10, 2])  # one Slurm job array of 2 tasks
    assert job.result() == 42
    assert [j.result() for j in jobs] == [1024, 9]
    # real states through the sacct stand-in; no "Bypassing sacct error" warning
    # a task's result file is written before Slurm marks it done: wait for each final state (COMPLETING passes)
    assert [_final_state(j) for j in (job, *jobs)] == ["COMPLETED"] * 3
    assert not [r for r in caplog.records if "sacct" in r.getMessage()], caplog.text


def test_submitit_sees_a_cancelled_job_finish(slurm_cluster: Path, tmp_path: Path) -> None:
    # without the sacct stand-in this job would stay UNKNOWN (never done): it writes no result
    executor = _executor(tmp_path, timeout_min=5)
    job = executor.submit(time.sleep, 300)
    deadline = time.monotonic() + 30
    while job.get_info(mode="force").get("State") != "RUNNING":
        assert time.monotonic() < deadline, job.get_info(mode="force")
        time.sleep(0.5)
    job.cancel()
    while not job.done(force_check=True):
        assert time.monotonic() < deadline, job.get_info(mode="force")
        time.sleep(0.5)
    assert job.state.startswith("CANCELLED")


def _sleeps_until_requeued(seconds: float) -> int:
    """First run: sleep past the time limit; after submitit's requeue: return SLURM_RESTART_COUNT."""
    restarts = int(os.environ.get("SLURM_RESTART_COUNT", "0"))
    if restarts == 0:
        time.sleep(seconds)
    return restarts


@pytest.mark.slow
def test_submitit_requeues_on_time_limit(slurm_cluster: Path, tmp_path: Path) -> None:
    """--time=1 with submitit's --signal=USR2@50: the signal comes ~10-20 s in, submitit checkpoints and
    runs `scontrol requeue` (allowed: JobRequeue=1), the job waits cred_expire=10 s and runs again."""
    submitit = pytest.importorskip("submitit")

    class SleepsUntilRequeued(submitit.helpers.Checkpointable):
        def __call__(self, seconds: float) -> int:
            return _sleeps_until_requeued(seconds)

    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the job cannot import this test module
    try:
        executor = _executor(tmp_path, timeout_min=1, slurm_signal_delay_s=50)
        t0 = time.monotonic()
        job = executor.submit(SleepsUntilRequeued(), 120)
        assert job.result() == 1  # ran twice: requeued once
        elapsed = time.monotonic() - t0
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    fields = _job_fields(job.job_id)
    deadline = time.monotonic() + 30  # result() can return while Slurm still finishes the job
    while fields["JobState"] in ("RUNNING", "COMPLETING") and time.monotonic() < deadline:
        time.sleep(1)
        fields = _job_fields(job.job_id)
    assert fields["Restarts"] == "1" and fields["JobState"] == "COMPLETED", fields
    assert elapsed < 60, elapsed
