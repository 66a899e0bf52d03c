"""Where the shared corpus of captured instrument messages is: one answer for tests and benches.

``$TRYGG_CORPUS`` if set, else ``shared/corpus`` beside the checkout (``../shared/corpus`` from
the repository root, as on the lab machine and in CI's fresh clone). It holds one folder per
protocol (``astm/``, ``hl7/``, ...). Standard library only; it lives in ``bench/`` because the
benches read the corpus too and installed code must not import ``tests/``. What a test does when
the corpus is missing (skip here, fail under ``CI=true``) is decided in conftest.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV = "TRYGG_CORPUS"
#: the protocol folders the test suite reads
KINDS = ("astm", "hl7")


def corpus_root() -> Path:
    env = os.environ.get(ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "shared" / "corpus"


def corpus_dir(kind: str) -> Path:
    """One protocol's folder, e.g. ``corpus_dir("astm")``."""
    return corpus_root() / kind


def corpus_files(kind: str, pattern: str) -> list[Path]:
    """The files of one protocol matching a glob, sorted; none when the folder is missing."""
    folder = corpus_dir(kind)
    return sorted(folder.glob(pattern)) if folder.is_dir() else []
