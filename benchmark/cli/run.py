"""`bench run`: plan a grid, print the plan (--dry-run) or check it can run and dispatch it, then say what is
left."""
from __future__ import annotations

import argparse

from tabulate import tabulate

from ..dispatch.plan import Plan


def run_grid(args: argparse.Namespace) -> int:
    """Plan a grid's jobs, skip the done ones, check data and folders, submit the rest (--dry-run: print)."""
    from attacks.external import is_external

    from ..dispatch.dispatch import DispatchOptions, default_parallel, dispatch
    from ..dispatch.plan import Job, make_plan, missing_imports
    from ..dispatch.preflight import preflight
    from ..grids import distinct_jobs, grid_cells
    from ..jobs.poison_store import missing_import
    from ..jobs.seeds import with_seeds

    seeds = getattr(args, "seeds", None)
    plan = make_plan(args.grid, args.scale, results=args.results, store=args.store, rows=args.rows,
                     columns=args.columns, seeds=seeds)
    selected = {(c.grid, c.row, c.column) for c in plan.cells}
    external = [r for r in args.rows or () if is_external(r)]
    paper_poisons, paper_victims = distinct_jobs(with_seeds([c for c in grid_cells(args.grid, "paper", external)
                                                             if (c.grid, c.row, c.column) in selected], seeds))
    paper_hours = sum(Job("poison", k, attack=a).gpu_hours for k, a in paper_poisons.items()) + \
        sum(Job("victim", k, victim=v).gpu_hours for k, v in paper_victims.items())
    times = f" x {len(seeds)} seeds" if seeds else ""
    print(f"grid {args.grid} at the {args.scale} scale: {len(selected)} cells{times}, {len(plan.jobs)} jobs "
          f"({len(plan.done)} done, {len(plan.pending)} to run)")
    for attack, cells in plan.skipped.items():
        print(f"  skipped: {len(cells)} cells of attack {attack!r}, which is not registered yet")
    missing = missing_imports(plan)
    for spec in missing:
        print(f"  not imported: {spec.attack} for {spec.dataset} (run `bench import-poison` first)")
    slurm_params = None
    if args.cluster == "slurm":
        from ..dispatch.slurm_settings import slurm_parameters

        slurm_params = slurm_parameters(args)
    if args.dry_run:
        print_dry_run(plan, slurm_params)
        print(f"estimate at the paper scale: {paper_hours:,.0f} GPU hours for these cells' {len(paper_poisons)} "
              f"poisons and {len(paper_victims)} victims (rough, one A100-class GPU; table in "
              "benchmark/dispatch/plan.py)")
    # the checks of a real run, on a dry run too (which creates no folder): it fails as the run would
    if missing:
        raise SystemExit("bench run: nothing submitted: " + "; ".join(missing_import(m, args.store) for m in missing))
    preflight(plan, data_root=args.data_root, store=args.store, results=args.results, create=not args.dry_run)
    if args.dry_run:
        return 0
    parallel = args.parallel or default_parallel(args.cluster)
    options = DispatchOptions(args.cluster, parallel=parallel, gpus_per_job=args.gpus_per_job,
                              threads=args.threads)
    if args.cluster == "slurm":
        from ..dispatch.slurm_settings import check_controller, check_submission

        check_controller()
        options.max_time_min = check_submission(slurm_params)
        options.slurm = slurm_params
    submissions = dispatch(plan, options, data_root=args.data_root, store=args.store, results=args.results)
    after = make_plan(args.grid, args.scale, results=args.results, store=args.store, rows=args.rows,
                      columns=args.columns, seeds=seeds)
    print(f"submitted {len(submissions)} jobs; now {len(after.done)} of {len(after.jobs)} jobs done "
          f"(bench cells --grid {args.grid} --scale {args.scale} shows every cell)")
    print_left(after, args.store)
    return 0 if len(after.done) == len(after.jobs) else 1


def print_dry_run(plan: Plan, slurm_params: dict | None) -> None:
    """The plan's jobs; on Slurm also the time limit and memory each job would ask for."""
    columns = ["job", "kind", "state", "after", "probes"]
    rows = [[j.name, j.kind, "done" if j.key in plan.done else "pending",
             next((d.name for d in plan.jobs if d.key == j.depends_on), "-"), ",".join(j.probes) or "-"]
            for j in plan.jobs]
    if slurm_params is not None:
        from ..dispatch.slurm_settings import job_request

        columns += ["time (min)", "mem (GB)"]
        for row, job in zip(rows, plan.jobs):
            request = job_request([job], slurm_params)
            row += [request["timeout_min"], request["mem_gb"]]
    print(tabulate(rows, headers=columns))
    if slurm_params is not None:
        time_from = "from --time or the profile" if slurm_params.get("timeout_min") is not None else \
            "from the scale's job size (2 x the expected minutes + 5, 10 min to 24 h, at most the partition's limit)"
        mem_from = "from --mem-gb or the profile" if slurm_params.get("mem_gb") is not None else \
            "from the scale's job size"
        print(f"Slurm: time limit {time_from}; memory {mem_from}; a job array asks for its largest job's; a job "
              "past its limit is requeued and resumes from its checkpoint")


def print_left(plan: Plan, store) -> None:
    """Each job not done after a run, with its state and why."""
    from ..dispatch.status import job_status

    left = [(job, job_status(job, plan, store)) for job in plan.jobs if job.key not in plan.done]
    for job, status in left:
        why = f": {status.error}" if status.error else ""
        print(f"  left: {job.name} {status.shown} (job {status.job_id}){why}")
    if left:
        print("  the next `bench run` submits the failed, blocked and pending jobs again and waits for the running "
              "and queued ones; `bench status` shows every cell")
