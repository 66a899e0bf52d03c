"""Shared fixtures: store URLs for SQLite and the real PostgreSQL; what a missing resource means.

Without PostgreSQL or the shared corpus a test is skipped on a developer's machine, but under
``CI=true`` it fails: CI provides both, so a skip there would hide a broken setup.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest
from sqlalchemy import Engine, create_engine, text

from bench.corpus import ENV as CORPUS_ENV
from bench.corpus import KINDS, corpus_dir
from gateway.store.engine import make_engine, upgrade

PG_ADMIN_URL = os.environ.get(
    "TRYGG_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1", "yes")


def unavailable(reason: str) -> NoReturn:
    """Skip the test for want of something it needs, or under CI fail it."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: CI must provide it)")
    pytest.skip(reason)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "corpus(*paths): needs these files or folders of the shared corpus"
    )


def pytest_sessionstart(session: pytest.Session) -> None:
    # a missing folder leaves its parametrised tests empty, which pytest skips quietly
    missing = [str(corpus_dir(kind)) for kind in KINDS if not corpus_dir(kind).is_dir()]
    if missing and in_ci():
        raise pytest.UsageError(
            f"CI=true but the shared corpus is missing: {', '.join(missing)} "
            f"(put shared/corpus beside the checkout or set {CORPUS_ENV})"
        )


def pytest_runtest_setup(item: pytest.Item) -> None:
    for marker in item.iter_markers("corpus"):
        missing = [str(path) for path in marker.args if not Path(path).exists()]
        if missing:
            unavailable(f"shared corpus not present: {', '.join(missing)} (set {CORPUS_ENV})")


def require_corpus(path: Path) -> Path:
    """``path`` if that corpus file is present; else skip the test (under CI: fail it)."""
    if not path.exists():
        unavailable(f"shared corpus not present: {path} (set {CORPUS_ENV})")
    return path


def _pg_available() -> bool:
    try:
        engine = create_engine(PG_ADMIN_URL)
        with engine.connect():
            pass
        engine.dispose()
        return True
    except Exception:
        return False


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'trygg.sqlite3'}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database on the machine's server, dropped afterwards."""
    if not _pg_available():
        unavailable(f"PostgreSQL is not reachable at {PG_ADMIN_URL.rsplit('@', 1)[-1]}")
    name = f"trygg_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest) -> str:
    """Run the test on both backends."""
    name = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    return str(request.getfixturevalue(name))


@pytest.fixture
def engine(store_url: str) -> Iterator[Engine]:
    eng = make_engine(store_url)
    upgrade(eng)
    yield eng
    eng.dispose()
