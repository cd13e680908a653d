"""Parity with the authors' code (github kaiwenzha/contrastive-poisoning at 628838c, with its kornia-pil
submodule): their functions run beside ours on the same inputs, step by step (goldens under tests/golden/)
and end to end at the mini scale (records under results/parity/). docs/parity.md has the commands and the
verdict.

The reference is never copied here: `reference.locate` checks a checkout a user names, and `refside` runs
its code in a subprocess (its own `kornia` is the patched kornia-pil) adapted from outside its files to a CPU
and one process. May import victims/ and attacks/ (ours), and the rest of benchmark/ below the CLI.
"""
