"""bench run: planning, skipping done jobs, local and debug executors agree, clear errors before submitting."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmark.cli.main import main
from benchmark.dispatch.plan import make_plan


def _records(results: Path) -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in (results / "records" / "smoke").glob("*.json")}


def test_dry_run_prints_the_plan_and_an_estimate(tmp_path: Path, capsys, monkeypatch):
    from attacks import ATTACKS

    monkeypatch.delitem(ATTACKS._items, "cp-c")  # an attack not registered (yet): its cells are skipped
    assert main(["run", "--grid", "effectiveness", "--scale", "smoke", "--dry-run",
                 "--store", str(tmp_path), "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "poison-random-na-cifar10" in out and "victim-simclr-resnet18-cifar10-random" in out
    assert "poison-cp-s-simclr-cifar10" in out and "poison-cp-c-simclr-cifar10" in out  # CP-S needs its CP-C
    assert "GPU hours" in out and "cells of attack 'cp-c', which is not registered yet" in out
    assert not (tmp_path / "records").exists()  # nothing ran


def test_local_and_debug_give_the_same_records_and_a_second_run_submits_nothing(tmp_path: Path, capsys):
    # the same threads on both sides (CPU results may differ in the last bits between thread counts)
    grid = ["run", "--grid", "motivation", "--scale", "smoke", "--rows", "none", "untrained", "--threads", "1"]
    runs = {}
    for cluster in ("debug", "local"):
        base = tmp_path / cluster
        assert main(grid + ["--cluster", cluster, "--store", str(base / "store"), "--results", str(base / "res")]) == 0
        runs[cluster] = _records(base / "res")
    assert len(runs["debug"]) == 5 and runs["debug"].keys() == runs["local"].keys()
    for name, record in runs["debug"].items():
        assert record["metrics"] == runs["local"][name]["metrics"], name
        assert record["history"] == [] or [h["loss"] for h in record["history"]] == \
            [h["loss"] for h in runs["local"][name]["history"]]
    capsys.readouterr()
    base = tmp_path / "local"
    assert main(grid + ["--store", str(base / "store"), "--results", str(base / "res")]) == 0
    assert "submitted 0 jobs" in capsys.readouterr().out


def test_a_corrupt_record_is_run_again(tmp_path: Path):
    rows = ["none", "untrained"]
    main(["run", "--grid", "motivation", "--scale", "smoke", "--cluster", "debug", "--store", str(tmp_path),
          "--results", str(tmp_path), "--rows", *rows])
    victim = next(j for j in make_plan("motivation", "smoke", results=tmp_path, store=tmp_path, rows=rows).jobs
                  if j.victim.algorithm == "simclr")
    path = next(p for p in (tmp_path / "records" / "smoke").glob("*.json") if victim.key.startswith(p.stem))
    path.write_text(path.read_text()[:50])  # truncated
    plan = make_plan("motivation", "smoke", results=tmp_path, store=tmp_path, rows=rows)
    assert [j.key for j in plan.pending] == [victim.key]


def test_a_victim_of_a_poison_made_again_or_missing_is_run_again(tmp_path: Path):
    """A record counts as done only for the poison stored now: while the poison is missing (to be made again)
    its victim is pending too, and is kept without training when the poison comes back bit for bit; after the
    poison is made again with other contents (a new budget) the victim trains again."""
    from attacks import Poison
    from benchmark.jobs.poison import load_poison, poison_path

    grid = ["run", "--grid", "effectiveness", "--scale", "smoke", "--cluster", "debug", "--rows", "random",
            "--columns", "cifar10/simclr", "--store", str(tmp_path), "--results", str(tmp_path)]
    assert main(grid) == 0

    def plan():
        return make_plan("effectiveness", "smoke", results=tmp_path, store=tmp_path, rows=["random"],
                         columns=["cifar10/simclr"])

    def pending() -> list[str]:
        return sorted(j.kind for j in plan().pending)

    assert pending() == []
    first = _records(tmp_path)
    poison_job = plan().jobs[0]
    path = poison_path(poison_job.attack, tmp_path)
    old = load_poison(poison_job.attack, tmp_path)
    path.unlink()
    assert pending() == ["poison", "victim"]
    assert main(grid) == 0 and pending() == []
    assert _records(tmp_path) == first  # the same poison again: the record is kept as it was (not retrained)
    Poison.create(-old.delta, old.per, old.eps, poison_job.attack, old.index).save(path)
    assert pending() == ["victim"]
    assert main(grid) == 0 and pending() == []
    (record,) = _records(tmp_path).values()
    assert record["poison"]["checksum"] == load_poison(poison_job.attack, tmp_path).checksum != old.checksum
    assert record["created"] != next(iter(first.values()))["created"]


def test_a_victim_record_of_a_poison_made_with_another_budget_is_out_of_date_without_the_store(tmp_path: Path,
                                                                                               monkeypatch):
    """A poisoned victim's record keeps what its poison was made with (and the CP-C its CP-S started from):
    after the scale's CP-C budget changes, the tables leave the cell empty even with no store to look in."""
    from attacks import contrastive_poisoning as cp
    from benchmark.report.tables import build_table

    store, results = tmp_path / "store", tmp_path / "results"
    assert main(["run", "--grid", "effectiveness", "--scale", "smoke", "--cluster", "debug", "--rows", "cp-s",
                 "--columns", "cifar10/simclr", "--store", str(store), "--results", str(results)]) == 0
    (record,) = _records(results).values()
    made = record["poison"]
    assert made["settings"]["epochs"] == cp.BUDGETS["smoke"]["cp-s"]["epochs"]
    (cp_c,) = made["input_settings"].values()
    assert cp_c["epochs"] == cp.BUDGETS["smoke"]["cp-c"]["epochs"]

    def measured() -> list[float | None]:
        (table,) = [build_table("effectiveness", "smoke", results)]
        return [c.ours for c in table.cells if c.row == "cp-s" and c.column == "cifar10/simclr"]

    assert measured()[0] is not None
    budget = cp.BUDGETS["smoke"]["cp-c"]
    monkeypatch.setitem(cp.BUDGETS["smoke"], "cp-c", {**budget, "epochs": 5})
    assert measured() == [None]  # started from a CP-C of another budget
    monkeypatch.setitem(cp.BUDGETS["smoke"], "cp-c", budget)
    assert measured()[0] is not None
    monkeypatch.setitem(cp.BUDGETS["smoke"], "cp-s", {**cp.BUDGETS["smoke"]["cp-s"], "num_steps": 3})
    assert measured() == [None]  # made with another budget itself
    plan = make_plan("effectiveness", "smoke", results=results, store=store, rows=["cp-s"],
                     columns=["cifar10/simclr"])
    assert sorted(j.kind for j in plan.pending) == ["poison", "victim"]


def test_a_record_made_with_another_probe_protocol_is_probed_again_without_training(tmp_path: Path):
    """Changing the scale's probe (e.g. standardised features) makes finished victims pending (status says
    why); running them again resumes the final checkpoint (no epoch trained) and probes it the new way."""
    from benchmark.dispatch.status import OUTDATED, plan_status

    grid = ["run", "--grid", "effectiveness", "--scale", "smoke", "--cluster", "local", "--rows", "none",
            "--columns", "cifar10/simclr", "--store", str(tmp_path), "--results", str(tmp_path)]
    assert main(grid) == 0
    (name, record), = _records(tmp_path).items()
    path = tmp_path / "records" / "smoke" / name
    epochs = record["settings"]["train"]["epochs"]
    assert record["resumed_from_epoch"] == 0 and record["settings"]["probe"]["standardize"] is True
    record["settings"]["probe"]["standardize"] = False  # as a record made before the protocol changed
    path.write_text(json.dumps(record))
    plan = make_plan("effectiveness", "smoke", results=tmp_path, store=tmp_path, rows=["none"],
                     columns=["cifar10/simclr"])
    assert [j.kind for j in plan.pending] == ["victim"]
    (status,) = plan_status(plan, tmp_path).values()
    assert status.state == "pending" and status.error == OUTDATED and status.job_id != "-"
    assert main(grid) == 0
    again = _records(tmp_path)[name]
    assert again["resumed_from_epoch"] == epochs and again["settings"]["probe"]["standardize"] is True
    assert again["history"] == record["history"]


def test_a_record_of_other_training_settings_or_data_is_pending_but_not_one_of_other_logging(tmp_path: Path):
    grid = ["run", "--grid", "effectiveness", "--scale", "smoke", "--cluster", "debug", "--rows", "none",
            "--columns", "cifar10/simclr", "--store", str(tmp_path), "--results", str(tmp_path)]
    assert main(grid) == 0
    (name, record), = _records(tmp_path).items()
    path = tmp_path / "records" / "smoke" / name

    def pending_after(edit) -> list[str]:
        changed = json.loads(json.dumps(record))
        edit(changed)
        path.write_text(json.dumps(changed))
        plan = make_plan("effectiveness", "smoke", results=tmp_path, store=tmp_path, rows=["none"],
                         columns=["cifar10/simclr"])
        return [j.kind for j in plan.pending]

    assert pending_after(lambda r: None) == []
    assert pending_after(lambda r: r["settings"]["train"].update(embedding_stats=0, checkpoint_every=99)) == []
    assert pending_after(lambda r: r["settings"]["train"].update(epochs=99)) == ["victim"]
    assert pending_after(lambda r: r["settings"].update(width=1.0)) == ["victim"]
    assert pending_after(lambda r: r["data"].update(stands_for="cifar10 -> synthetic (32 px, 99/class)")) == ["victim"]


def test_bad_input_is_refused_before_anything_runs(tmp_path: Path, capsys, monkeypatch):
    assert main(["run", "--grid", "table9", "--scale", "smoke"]) == 2
    assert "valid grids: effectiveness, downstream" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="not writable"):
        main(["run", "--grid", "motivation", "--scale", "smoke", "--results", "/proc/cp-bench-results"])
    monkeypatch.setenv("SLURM_CONF", str(tmp_path / "missing-slurm.conf"))
    with pytest.raises(SystemExit, match="Slurm"):
        main(["run", "--grid", "motivation", "--scale", "smoke", "--cluster", "slurm", "--store", str(tmp_path),
              "--results", str(tmp_path)])
    assert not (tmp_path / "logs").exists()  # nothing submitted


def test_status_shows_a_failed_job_and_the_next_run_resubmits_only_it(tmp_path: Path, capsys, monkeypatch):
    import benchmark.jobs.victim as victim_job

    where = ["--store", str(tmp_path), "--results", str(tmp_path), "--rows", "none", "untrained",
             "--columns", "simclr", "moco"]
    run_victim = victim_job.run_victim

    def fails_for_moco(spec, *args, **kwargs):
        if spec.algorithm == "moco":
            raise RuntimeError("planted failure in the moco victim")
        return run_victim(spec, *args, **kwargs)

    monkeypatch.setattr(victim_job, "run_victim", fails_for_moco)
    monkeypatch.setattr("pdb.post_mortem", lambda *a, **k: None)  # the debug executor opens pdb on a failure
    assert main(["run", "--grid", "motivation", "--scale", "smoke", "--cluster", "debug", *where]) == 1
    capsys.readouterr()
    assert main(["status", "--grid", "motivation", "--scale", "smoke", *where]) == 0
    out = capsys.readouterr().out
    moco_line = next(line for line in out.splitlines() if line.startswith("motivation  none") and "moco" in line)
    assert "failed" in moco_line and "planted failure in the moco victim" in moco_line
    assert "2 done" in out and "1 failed" in out
    monkeypatch.setattr(victim_job, "run_victim", run_victim)
    assert main(["run", "--grid", "motivation", "--scale", "smoke", "--cluster", "debug", *where]) == 0
    assert "submitted 1 jobs" in capsys.readouterr().out  # the failed one only


KILL_RUN = ["run", "--grid", "motivation", "--scale", "smoke", "--rows", "none", "ap-t", "--columns", "simclr",
            "--cluster", "local", "--parallel", "2"]  # a poison and two victims


def _record_set(results: Path) -> dict[str, tuple]:
    """What a finished run leaves, by record file: the key, the victim and poison specs, the settings, the
    probes (not the numbers: a job resumed from a checkpoint need not repeat them to the last bit)."""
    out = {}
    for path in (results / "records" / "smoke").iterdir():
        record = json.loads(path.read_text())
        out[path.name] = (record["key"], record["attack"], (record.get("poison") or {}).get("key"),
                          json.dumps(record["settings"], sort_keys=True),
                          sorted(record["metrics"]))
    return out


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> tuple[dict[str, tuple], float]:
    """The records of the grid run without interruption, and how long that took."""
    import time

    base = tmp_path_factory.mktemp("uninterrupted")
    started = time.monotonic()
    assert main([*KILL_RUN, "--store", str(base / "store"), "--results", str(base / "res")]) == 0
    return _record_set(base / "res"), time.monotonic() - started


@pytest.mark.slow
@pytest.mark.parametrize("attempt", range(3))
def test_killing_bench_run_and_its_jobs_at_a_random_point_then_running_again_gives_the_same_records(
        tmp_path: Path, uninterrupted, attempt: int):
    """Kill `bench run --cluster local` and every job at a random point (a different one each attempt); the next
    run completes the grid with the same set of records as a run never interrupted: one valid record per
    victim, no stray file in the records folder."""
    import os
    import random
    import signal
    import subprocess
    import sys
    import time

    expected, duration = uninterrupted
    where = ["--store", str(tmp_path / "store"), "--results", str(tmp_path / "res")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    kill_at = random.Random().uniform(1.0, duration + 4.0)  # + the start of this subprocess
    proc = subprocess.Popen([sys.executable, "-m", "benchmark.cli.main", *KILL_RUN, *where], env=env,
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(kill_at)
    os.killpg(proc.pid, signal.SIGKILL)  # bench run and the local jobs it started (same session)
    proc.wait()
    for ledger in (tmp_path / "store" / "runs" / "smoke").glob("*.json"):  # any job that escaped the group
        try:
            os.kill(int(json.loads(ledger.read_text())["job_id"]), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass
    assert main([*KILL_RUN, *where]) == 0, f"killed after {kill_at:.1f} s"
    assert _record_set(tmp_path / "res") == expected, f"killed after {kill_at:.1f} s"
    plan = make_plan("motivation", "smoke", results=tmp_path / "res", store=tmp_path / "store",
                     rows=["none", "ap-t"], columns=["simclr"])
    assert plan.done == {j.key for j in plan.jobs}
    assert sorted(expected) == sorted(f"{j.key[:20]}.json" for j in plan.jobs if j.kind == "victim")


class _FakeHandle:
    """A submitted job that finishes after `polls` looks at it (or fails, for a poison named in `failing`)."""

    def __init__(self, job_id: int, polls: int, fail: bool, log: list):
        self.job_id, self.polls, self.fail, self.log = job_id, polls, fail, log

    def done(self) -> bool:
        self.polls -= 1
        return self.polls <= 0

    def result(self):
        self.log.append(("end", self.job_id))
        if self.fail:
            raise RuntimeError("boom")
        return {}


class _FakeExecutor:
    def __init__(self, polls: dict[str, int], failing: set[str]):
        self.polls, self.failing, self.started, self.log = polls, failing, [], []

    def update_parameters(self, **_):
        pass

    def submit(self, call):
        running = sum(1 for kind, _ in self.log if kind == "start") - sum(1 for kind, _ in self.log if kind == "end")
        self.log.append(("start", len(self.started)))
        self.started.append((call.job, running + 1))
        job = call.job
        kind = f"{job.attack.attack}@{job.attack.algorithm}" if job.kind == "poison" else f"victim-{job.victim.attack}"
        return _FakeHandle(len(self.started) - 1, self.polls[kind], kind in self.failing, self.log)


def test_local_runs_keep_every_slot_busy_and_start_a_victim_as_soon_as_its_poison_is_made(tmp_path, monkeypatch):
    """Two slots, a slow and a quick poison: the quick poison's victim starts while the slow one is still
    being made (no waves); no more than two run at once; a failed poison's victims are not run."""
    from benchmark.dispatch import dispatch as d

    plan = make_plan("effectiveness", "smoke", results=tmp_path, store=tmp_path, rows=["random", "cp-c"],
                     columns=["cifar10/simclr", "cifar10/moco"])
    fake = _FakeExecutor({"cp-c@simclr": 30, "cp-c@moco": 1, "random@None": 1, "victim-random": 2,
                          "victim-cp-c": 2}, failing={"cp-c@moco"})
    monkeypatch.setattr(d, "make_executor", lambda options, folder: fake)
    monkeypatch.setattr(d, "POLL_S", 0.0)
    d.dispatch(plan, d.DispatchOptions(cluster="local", parallel=2), store=tmp_path, results=tmp_path)

    def name(job) -> tuple[str, str, str]:
        return (job.kind, job.attack.attack, job.attack.algorithm) if job.kind == "poison" else \
            (job.kind, job.victim.attack, job.victim.algorithm)

    names = [name(job) for job, _ in fake.started]
    assert max(n for _, n in fake.started) == 2
    assert ("victim", "cp-c", "moco") not in names  # its poison failed
    cpc_end = fake.log.index(("end", names.index(("poison", "cp-c", "simclr"))))
    for algorithm in ("simclr", "moco"):
        assert fake.log.index(("start", names.index(("victim", "random", algorithm)))) < cpc_end
    assert names[-1] == ("victim", "cp-c", "simclr") and len(names) == 6


def test_cancel_stops_a_local_job_whose_controller_ignores_sigint(tmp_path: Path):
    """A `bench run` started in the background by a shell hands its jobs an ignored SIGINT, and submitit's
    jobs carry on after SIGTERM: cancelling must still stop the controller and its task."""
    import subprocess
    import sys
    import time

    from benchmark.dispatch.status import pid_alive, stop_local_job

    task = "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); time.sleep(600)"
    controller = ("import signal, subprocess, sys, time  # stands for submitit.local._local\n"
                  "signal.signal(signal.SIGINT, signal.SIG_IGN)\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                  f"child = subprocess.Popen([sys.executable, '-c', {task!r}])\n"
                  "print(child.pid, flush=True)\ntime.sleep(600)\n")
    proc = subprocess.Popen([sys.executable, "-c", controller], stdout=subprocess.PIPE, text=True)
    child = int(proc.stdout.readline())
    assert pid_alive(str(proc.pid))
    stop_local_job(proc.pid, grace_s=0.5)
    assert proc.wait(10) is not None

    def gone(pid: int) -> bool:  # exited (a zombie until its new parent reaps it counts too)
        try:
            return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[-1].split()[0] == "Z"
        except FileNotFoundError:
            return True

    deadline = time.monotonic() + 10
    while not gone(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert gone(child)


def test_a_run_finishes_each_poison_s_cells_before_the_next_poison_and_waits_for_an_earlier_run_s_poison(
        tmp_path, monkeypatch):
    """One slot: clean victims first, then each poison followed by its victims (a stopped run leaves whole
    cells). A poison still being made by an earlier `bench run` is not submitted again: its victim waits for
    it and starts once it is made, and is not run if it failed."""
    from benchmark.dispatch import dispatch as d
    from benchmark.dispatch import status as s
    from benchmark.dispatch.local import run_order

    plan = make_plan("effectiveness", "smoke", results=tmp_path, store=tmp_path,
                     rows=["none", "random", "cp-c", "cp-s"], columns=["cifar10/simclr", "cifar10/moco"])
    order = [(j.kind, (j.attack or j.victim).attack) for j in run_order(plan.pending)]
    assert order[:2] == [("victim", "none")] * 2
    assert order[2:5] == [("poison", "random"), ("victim", "random"), ("victim", "random")]
    assert order[5:] == [("poison", "cp-c"), ("victim", "cp-c"), ("poison", "cp-s"), ("victim", "cp-s")] * 2

    for outcome, expect_victim in (("pending", True), ("failed", False)):  # made (its output is new) / failed
        plan = make_plan("effectiveness", "smoke", results=tmp_path, store=tmp_path, rows=["cp-c"],
                         columns=["cifar10/simclr"])
        poison = next(j for j in plan.pending if j.kind == "poison")
        looks = []

        def fake_status(job, plan, store, poison=poison, looks=looks, outcome=outcome):
            if job.key != poison.key:
                return s.JobStatus("pending")
            looks.append(fake.log[:])
            return s.JobStatus("running" if len(looks) < 4 else outcome, "123")

        fake = _FakeExecutor({"victim-cp-c": 1}, failing=set())
        monkeypatch.setattr(s, "job_status", fake_status)
        monkeypatch.setattr(d, "make_executor", lambda options, folder: fake)
        monkeypatch.setattr(d, "POLL_S", 0.0)
        d.dispatch(plan, d.DispatchOptions(cluster="local", parallel=2), store=tmp_path, results=tmp_path)
        assert all(job.kind == "victim" for job, _ in fake.started)  # the poison is not made twice
        assert len(fake.started) == int(expect_victim) and len(looks) == 4
        assert all(log == [] for log in looks)  # nothing started while the poison was being made


def test_on_slurm_a_victim_depends_on_its_poison_still_queued_from_an_earlier_run(tmp_path, monkeypatch):
    """The poison job queued by an earlier `bench run` is not submitted again; its victim gets afterok on it."""
    import contextlib

    from benchmark.dispatch import dispatch as d
    from benchmark.dispatch import status as s

    plan = make_plan("effectiveness", "smoke", results=tmp_path, store=tmp_path, rows=["cp-c"],
                     columns=["cifar10/simclr"])
    poison = next(j for j in plan.pending if j.kind == "poison")

    class Handle:
        def __init__(self, job_id):
            self.job_id = job_id

    class SlurmFake:
        def __init__(self):
            self.params, self.submitted = {}, []

        def update_parameters(self, **params):
            self.params.update(params)

        def batch(self):
            return contextlib.nullcontext()

        def submit(self, call):
            self.submitted.append((call.job, self.params.get("slurm_additional_parameters", {}).get("dependency")))
            return Handle(str(100 + len(self.submitted)))

    fake = SlurmFake()
    monkeypatch.setattr(s, "job_status", lambda job, plan, store: s.JobStatus(
        "queued" if job.key == poison.key else "pending", "77"))
    monkeypatch.setattr(d, "make_executor", lambda options, folder: fake)
    d.dispatch(plan, d.DispatchOptions(cluster="slurm"), store=tmp_path, results=tmp_path, wait=False)
    assert [(job.kind, dependency) for job, dependency in fake.submitted] == [("victim", "afterok:77")]
