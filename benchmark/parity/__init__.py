"""Parity with the authors' code (github kaiwenzha/contrastive-poisoning at 628838c, with its kornia-pil
submodule): their functions run beside ours on the same inputs, step by step (goldens under tests/golden/)
and end to end at the mini scale (records under results/parity/). docs/parity.md has the commands and the
verdict.

The reference is never copied here: `reference.locate` checks a checkout a user names, `theirs` loads its code
(its own `kornia` is the patched kornia-pil) adapted from outside its files to a CPU, and `refside` runs it in
a subprocess. May import jobs/, report/, the model of cells (specs, scales, grids, records, paths), attacks/
and victims/; never dispatch/ or cli/ (the CLI imports it).
"""
