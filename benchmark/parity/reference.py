"""Locate and verify a checkout of the authors' code (`--reference DIR`) before anything runs or is written.

A checkout is accepted when its files are byte for byte those of commit 628838c (git blob ids, so a plain
export without `.git` is as good as a clone) and its `kornia-pil` submodule is there at c8b7b24.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

COMMIT = "628838ccd2b8b11fddbce2015a2d1e534428ced9"
KORNIA_PIL_COMMIT = "c8b7b24e22cd7c9914bf46a536b299170814b1be"
# git blob ids of the files we run, at COMMIT (`git ls-tree 628838c`)
FILES = {
    "cl_algs.py": "01209a19716a28fbb7f7a5cfcac1e4bed5d21ab5",
    "datasets.py": "bf331cc4159836877d0c52a7eb40b7e73ddf51e9",
    "evaluation.py": "8c3f99eea4f53276c4fa0aec7503402efafc9cad",
    "losses.py": "444d3b51bf0c93de0a5b9beaee091c451d5a9f65",
    "main.py": "df16dcda9116e30c2e022c8ed0240b4779ef9a95",
    "model.py": "2e37babff2f8c35f08ba30b3f66868c5a1c45a4e",
    "resnet.py": "42e2faa570d3416e9e35b35dee14cd27a30f3cf5",
    "util.py": "ff32b9081285d38a7f5868981876af60b58ee433",
}
# the kornia-pil files the CP augmentations run through, at KORNIA_PIL_COMMIT
KORNIA_PIL_FILES = {
    "kornia/augmentation/augmentation.py": "3b22c0e96add56f3b346d9f1841679af34f365cc",
    "kornia/augmentation/base.py": "9b9f925bc9aacaac58e6defbda1e282e038c8d97",
    "kornia/augmentation/random_generator/random_generator.py": "3f47b64af4d2b6eaeb1ace3f574c7df3c6d7ed5e",
    "kornia/version.py": "03f454591d9487548606cf60fa2848f50879cce2",
}
FETCH = ("git clone --recursive https://github.com/kaiwenzha/contrastive-poisoning DIR && "
         f"git -C DIR checkout {COMMIT[:7]} && git -C DIR submodule update --init "
         "(docs/parity.md, 'Getting the reference')")


class ReferenceError(ValueError):
    """The reference checkout is missing, at another commit, or lacks kornia-pil; says what to fetch."""


def blob_id(path: Path) -> str:
    """The git blob id of a file (sha1 of 'blob <size>\\0' + content), as `git hash-object` prints it."""
    data = path.read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass(frozen=True)
class Reference:
    """A verified checkout: its root and the kornia-pil folder that must come first on its sys.path."""

    root: Path

    @property
    def kornia_pil(self) -> Path:
        return self.root / "kornia-pil"

    def describe(self) -> dict:
        return {"repository": "kaiwenzha/contrastive-poisoning", "commit": COMMIT,
                "kornia_pil_commit": KORNIA_PIL_COMMIT, "path": str(self.root)}


def locate(path: str | os.PathLike | None) -> Reference:
    """Check `path` (or $CP_REFERENCE) and return it; ReferenceError names what is wrong and what to fetch."""
    raw = path or os.environ.get("CP_REFERENCE")
    if not raw:
        raise ReferenceError(f"no reference given: pass --reference DIR (or set CP_REFERENCE); get it with: {FETCH}")
    root = Path(raw).expanduser().resolve()
    if not root.is_dir():
        raise ReferenceError(f"the reference {str(root)!r} is not a folder; get it with: {FETCH}")
    missing = [name for name in FILES if not (root / name).is_file()]
    if missing:
        raise ReferenceError(f"{root} is not a checkout of the authors' code (no {', '.join(missing)}); "
                             f"get it with: {FETCH}")
    changed = [name for name, blob in FILES.items() if blob_id(root / name) != blob]
    if changed:
        raise ReferenceError(f"{root} is not commit {COMMIT[:7]} ({', '.join(changed)} differ); "
                             f"check it out with: git -C {root} checkout {COMMIT[:7]}")
    pil = root / "kornia-pil"
    if not (pil / "kornia" / "__init__.py").is_file():
        raise ReferenceError(f"{root} lacks its kornia-pil submodule ({pil}/kornia is empty or missing); "
                             f"fetch it with: git -C {root} submodule update --init")
    changed = [name for name, blob in KORNIA_PIL_FILES.items()
               if not (pil / name).is_file() or blob_id(pil / name) != blob]
    if changed:
        raise ReferenceError(f"{pil} is not kornia-pil at {KORNIA_PIL_COMMIT[:7]} ({', '.join(changed)} differ or "
                             f"are missing); fetch it with: git -C {root} submodule update --init")
    return Reference(root)
