"""cp-bench's benchmark, one room per role; imports only go down this list (no room imports one above it):

- `cli/`: the `bench` command;
- `dispatch/`: plan -> submit -> job state (local or Slurm); `parity/`: the comparison with the authors' code;
  `pilots/`: the evidence-scale pilot study (the three side by side: none imports another);
- `report/`: records -> tables, leaderboard, figures, claims;
- `jobs/`: what one job does (a poison, a victim, an imported poison);
- the model of cells, here: `specs`, `scales`, `grids`, `records`, `paths`, `plugins` and `data/`;
- then attacks/ and victims/ (outside this package). tests/test_layers.py checks it.
"""
