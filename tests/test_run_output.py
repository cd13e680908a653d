"""What `bench run` shows and checks: progress lines and a summary, the CPU threads each local job gets, and
the checks (data sets present, folders writable) that stop it before anything is submitted."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from benchmark.cli.main import main
from benchmark.dispatch.plan import make_plan


def test_a_run_prints_a_line_per_finished_or_failed_job_with_its_cells_and_result_and_a_summary(
        tmp_path: Path, capsys, monkeypatch):
    import benchmark.jobs.victim as victim_job
    from benchmark.records import read_record, record_path

    run_victim = victim_job.run_victim

    def fails_for_moco(spec, *args, **kwargs):
        if spec.algorithm == "moco":
            raise RuntimeError("planted failure in the moco victim")
        return run_victim(spec, *args, **kwargs)

    monkeypatch.setattr(victim_job, "run_victim", fails_for_moco)
    monkeypatch.setattr("pdb.post_mortem", lambda *a, **k: None)  # the debug executor opens pdb on a failure
    where = ["--store", str(tmp_path), "--results", str(tmp_path), "--rows", "none", "--columns", "simclr", "moco"]
    assert main(["run", "--grid", "motivation", "--scale", "smoke", "--cluster", "debug", *where]) == 1
    out = capsys.readouterr().out
    assert "\r" not in out and "\x1b" not in out  # not a terminal: plain lines, readable in a log file
    plan = make_plan("motivation", "smoke", results=tmp_path, store=tmp_path, rows=["none"],
                     columns=["simclr", "moco"])
    simclr = next(c for c in plan.cells if c.column == "simclr")
    accuracy = read_record(record_path(tmp_path, "smoke", simclr.victim.key))["metrics"]["cifar10"]["probe_best"]
    done = [line for line in out.splitlines() if " done victim" in line]
    failed = [line for line in out.splitlines() if " FAILED victim" in line]
    assert len(done) == 1 and len(failed) == 1, out
    assert f"motivation none/simclr: {accuracy:.1f}%" in done[0]  # the cell and its probe accuracy
    assert "planted failure in the moco victim" in failed[0] and "motivation none/moco" in failed[0]
    assert re.search(r"\(log: \S+_log\.err\)$", failed[0])  # where the whole error is
    # the counts, with elapsed time (and, once a job has finished, an estimate of what is left)
    assert re.match(r"\[1/2 done, 0 running, 0 failed, 1 pending; \d+:\d\d elapsed, ~\d+:\d\d left\] done ", done[0])
    assert re.match(r"\[1/2 done, 0 running, 1 failed, 0 pending; \d+:\d\d elapsed\] FAILED ", failed[0])
    assert re.search(r"run finished in \d+:\d\d: 1 done, 1 failed or not run, 0 not started, of 2", out)


def test_a_poison_job_s_line_shows_its_checksum_and_time(tmp_path: Path, capsys):
    from attacks.spec import AttackSpec
    from benchmark.jobs.poison_store import poison_report

    where = ["--store", str(tmp_path), "--results", str(tmp_path), "--rows", "random",
             "--columns", "cifar10/simclr"]
    assert main(["run", "--grid", "effectiveness", "--scale", "smoke", "--cluster", "debug", *where]) == 0
    out = capsys.readouterr().out
    report = poison_report(AttackSpec("random", "cifar10", scale="smoke"), tmp_path)
    line = next(line for line in out.splitlines() if " done poison" in line)
    assert f"checksum {report['checksum'][:12]}, made in {report['seconds_this_run']} s" in line
    assert "effectiveness random/cifar10/simclr:" in next(line for line in out.splitlines() if " done victim" in line)


def test_each_local_job_gets_the_cores_shared_out_unless_omp_num_threads_or_threads_says_otherwise(
        tmp_path: Path, monkeypatch):
    from benchmark.dispatch import dispatch as d

    monkeypatch.setattr(d, "usable_cores", lambda: 4)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert [d.job_threads(None, n) for n in (1, 2, 3, 8)] == [4, 2, 1, 1]
    assert d.job_threads(3, 2) == 3  # --threads wins
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert d.job_threads(None, 1) == 1 and d.job_threads(2, 1) == 2

    class Fake:  # stands in for submitit's local executor: records what each job is handed
        def __init__(self):
            self.calls = []

        def update_parameters(self, **_):
            pass

        def submit(self, call):
            self.calls.append(call)
            return type("Handle", (), {"job_id": str(len(self.calls))})()

    monkeypatch.delenv("OMP_NUM_THREADS")
    fake = Fake()
    monkeypatch.setattr(d, "make_executor", lambda options, folder: fake)
    plan = make_plan("motivation", "smoke", results=tmp_path, store=tmp_path, rows=["none"],
                     columns=["simclr", "moco"])
    d.dispatch(plan, d.DispatchOptions(cluster="local", parallel=2), store=tmp_path, results=tmp_path, wait=False)
    assert [call.threads for call in fake.calls] == [2, 2]


def test_bench_run_without_parallel_runs_a_local_job_per_core_at_most_four_and_one_elsewhere(
        tmp_path: Path, monkeypatch):
    import torch

    from benchmark.dispatch import dispatch as d

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for cores, expected in ((1, 1), (2, 2), (3, 3), (16, 4)):
        monkeypatch.setattr(d, "usable_cores", lambda cores=cores: cores)
        assert d.default_parallel("local") == expected
    assert d.default_parallel("slurm") == 1 and d.default_parallel("debug") == 1
    monkeypatch.setattr(d, "usable_cores", lambda: 2)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert d.default_parallel("local") == 1  # one GPU, one job on it at a time
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    seen = []
    monkeypatch.setattr(d, "dispatch", lambda plan, options, **_: seen.append(options) or [])
    base = ["run", "--grid", "motivation", "--scale", "smoke", "--rows", "none", "--columns", "simclr",
            "--store", str(tmp_path / "store"), "--results", str(tmp_path / "results")]
    main(base)
    main(base + ["--parallel", "1"])
    assert [o.parallel for o in seen] == [2, 1]


def test_a_missing_data_set_stops_the_run_before_anything_is_submitted(tmp_path: Path, capsys):
    from benchmark.dispatch.preflight import how_to_provide

    empty = tmp_path / "no-data"
    empty.mkdir()
    store, results = tmp_path / "store", tmp_path / "results"
    with pytest.raises(SystemExit) as stopped:
        main(["run", "--grid", "effectiveness", "--scale", "mini", "--rows", "none", "--columns", "cifar10/simclr",
              "--cluster", "local", "--data-root", str(empty), "--store", str(store), "--results", str(results)])
    message = str(stopped.value)
    assert message.startswith("bench run: nothing submitted") and how_to_provide("cifar10") in message
    assert "bench datasets -v" in message and str(empty) in message
    assert not (store / "logs").exists() and not (store / "runs").exists()  # no job was submitted
    capsys.readouterr()
    main(["datasets", "--data-root", str(empty)])
    assert how_to_provide("cifar10") in capsys.readouterr().out  # the same words as `bench datasets`


def test_an_unwritable_store_stops_the_run_before_anything_is_submitted(tmp_path: Path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(SystemExit, match=r"is not writable .*--store DIR or set BENCH_STORE"):
        main(["run", "--grid", "motivation", "--scale", "smoke", "--rows", "none", "--columns", "simclr",
              "--cluster", "debug", "--store", str(blocker / "store"), "--results", str(tmp_path / "results")])
    assert not (tmp_path / "results" / "records").exists()


def test_a_dry_run_makes_the_checks_of_a_real_run_and_fails_as_it_would(tmp_path: Path, capsys):
    """`bench run --dry-run` prints the plan, then stops with the real run's error where the run could not start
    (a missing data root, an unwritable folder), and creates no folder either way."""
    from benchmark.dispatch.preflight import how_to_provide

    store, results = tmp_path / "store", tmp_path / "results"
    mini = ["run", "--grid", "effectiveness", "--scale", "mini", "--rows", "none", "--columns", "cifar10/simclr",
            "--data-root", str(tmp_path / "nonexistent-data"), "--store", str(store), "--results", str(results)]
    errors = []
    for dry in (["--dry-run"], []):
        with pytest.raises(SystemExit) as stopped:
            main(mini + dry)
        assert stopped.value.code not in (0, None)  # a message: exit status 1
        errors.append(str(stopped.value))
        if dry:
            assert "victim-simclr-resnet18-cifar10-none" in capsys.readouterr().out  # the plan is printed first
            assert not store.exists() and not results.exists()
    assert errors[0] == errors[1] and errors[0].startswith("bench run: nothing submitted")
    assert how_to_provide("cifar10") in errors[0] and "nonexistent-data" in errors[0]
    for made in (store, results):  # made by the real run's check
        made.rmdir()

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    smoke = ["run", "--grid", "motivation", "--scale", "smoke", "--rows", "none", "--columns", "simclr", "--dry-run"]
    with pytest.raises(SystemExit, match=r"is not writable .*--store DIR or set BENCH_STORE"):
        main(smoke + ["--store", str(blocker / "store"), "--results", str(results)])
    assert main(smoke + ["--store", str(store), "--results", str(results)]) == 0  # absent, but can be made
    assert not store.exists() and not results.exists() and sorted(tmp_path.iterdir()) == [blocker]
