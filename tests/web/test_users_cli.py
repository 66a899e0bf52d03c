"""`trygg users`: the first admin on a fresh site, roles, passwords, disabling; and what the
web makes of each (a real store shared by the CLI and the app)."""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from gateway.cli import app as cli
from gateway.config import load_config
from gateway.store.engine import make_engine, upgrade
from gateway.store.tables import audit, users, web_sessions
from gateway.web.app import create_app
from tests.web.conftest import LOCAL

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

runner = CliRunner()
GOOD = "lang og sikker frase"


@pytest.fixture
def site(tmp_path: Path) -> Path:
    path = tmp_path / "site.toml"
    path.write_text(
        f'[site]\nname = "fresh"\n[store]\nurl = "sqlite:///{tmp_path / "s.sqlite3"}"\n'
        '[web]\nlisten = "127.0.0.1:8470"\n',
        encoding="utf-8",
    )
    return path


@pytest.fixture
def engine(site: Path) -> Iterator[Engine]:
    engine = make_engine(load_config(site).store.url)
    upgrade(engine)
    yield engine
    engine.dispose()


def trygg(site: Path, *args: str, password: str | None = GOOD, stdin: str | None = None) -> str:
    env = {"TRYGG_PASSWORD": password} if password is not None else {}
    result = runner.invoke(cli, [*args, "--config", str(site)], env=env, input=stdin)
    return f"{result.exit_code}|{result.output}"


def signs_in(site: Path, engine: Engine, person: str, password: str = GOOD) -> int:
    with TestClient(create_app(load_config(site), engine), base_url=LOCAL) as client:
        form = client.get("/signin").text.split('class="signin-form"', 1)[1]
        token = re.search(r'name="csrf" value="([^"]+)"', form)
        assert token is not None
        response = client.post(
            "/signin",
            data={"csrf": token.group(1), "person": person, "password": password},
            follow_redirects=False,
        )
        return response.status_code


def test_the_first_admin_on_a_fresh_site_signs_in(site: Path, engine: Engine) -> None:
    out = trygg(
        site, "users", "add", "ada", "--name", "Ada Admin", "--roles", "admin", "--by", "it"
    )
    assert out.startswith("0|") and "Added ada (Ada Admin), roles: admin" in out
    assert signs_in(site, engine, "ada") == 303
    assert signs_in(site, engine, "ada", "some other password") == 401
    with engine.connect() as conn:
        row = conn.execute(select(users).where(users.c.person == "ada")).one()
        actors = set(conn.execute(select(audit.c.actor)).scalars())
    assert row.password_hash.startswith("$argon2id$") and GOOD not in row.password_hash
    assert "cli:it" in actors


def test_add_with_roles_and_operator_ids_then_list(site: Path, engine: Engine) -> None:
    out = trygg(
        site,
        *("users", "add", "bo", "--name", "Bo Bioingeniør", "--roles", "operator;verifier"),
        *("--operator-id", "BH", "--operator-id", "BO@afinion-1"),
    )
    assert out.startswith("0|"), out
    listed = runner.invoke(cli, ["users", "list", "--json", "--config", str(site)])
    assert json.loads(listed.stdout) == [
        {
            "person": "bo",
            "name": "Bo Bioingeniør",
            "roles": ["operator", "verifier"],
            "active": True,
            "can_sign_in": True,
            "operator_ids": ["BH", "BO@afinion-1"],
        }
    ]
    table = runner.invoke(cli, ["users", "list", "--config", str(site)], env={"COLUMNS": "200"})
    assert "operator;verifier" in table.stdout and "BO@afinion-1" in table.stdout


def test_add_refuses_bad_input(site: Path, engine: Engine) -> None:
    assert trygg(site, "users", "add", "x", "--name", "X", "--roles", "boss").startswith("2|")
    short = trygg(site, "users", "add", "x", "--name", "X", "--roles", "operator", password="kort")
    assert short.startswith("2|") and "at least 10 characters" in short
    named = trygg(
        site,
        "users",
        "add",
        "xavier",
        "--name",
        "X",
        "--roles",
        "operator",
        password="xavier-er-best",
    )
    assert named.startswith("2|") and "may not contain the user ID" in named
    assert trygg(site, "users", "add", "x", "--name", "X", "--roles", "operator").startswith("0|")
    again = trygg(site, "users", "add", "x", "--name", "X", "--roles", "operator")
    assert again.startswith("1|") and "trygg users passwd x" in again
    taken = trygg(
        site, "users", "add", "y", "--name", "Y", "--roles", "operator", "--operator-id", "Q"
    )
    assert taken.startswith("0|")
    clash = trygg(
        site, "users", "add", "z", "--name", "Z", "--roles", "operator", "--operator-id", "Q"
    )
    assert clash.startswith("1|") and "already belongs to y" in clash
    with engine.connect() as conn:
        assert set(conn.execute(select(users.c.person)).scalars()) == {"x", "y"}


def test_the_password_prompt_asks_twice(site: Path, engine: Engine) -> None:
    out = trygg(
        site,
        "users",
        "add",
        "eva",
        "--name",
        "Eva",
        "--roles",
        "operator",
        password=None,
        stdin=f"{GOOD}\n{GOOD}\n",
    )
    assert out.startswith("0|") and "Repeat for confirmation" in out and GOOD not in out
    assert signs_in(site, engine, "eva") == 303


def test_passwd_unlocks_and_ends_the_open_sessions(site: Path, engine: Engine) -> None:
    trygg(site, "users", "add", "kari", "--name", "Kari", "--roles", "supervisor")
    assert signs_in(site, engine, "kari") == 303
    assert trygg(site, "users", "passwd", "kari", password="et helt nytt passord").startswith("0|")
    assert signs_in(site, engine, "kari") == 401
    assert signs_in(site, engine, "kari", "et helt nytt passord") == 303
    with engine.connect() as conn:
        reasons = list(conn.execute(select(web_sessions.c.end_reason)).scalars())
    assert reasons[0] == "new_password" and reasons[1] == ""
    assert trygg(site, "users", "passwd", "nobody").startswith("1|")


def test_disable_ends_sessions_and_sign_in_then_enable(site: Path, engine: Engine) -> None:
    trygg(site, "users", "add", "kari", "--name", "Kari", "--roles", "supervisor")
    with TestClient(create_app(load_config(site), engine), base_url=LOCAL) as client:
        form = client.get("/signin").text.split('class="signin-form"', 1)[1]
        token = re.search(r'name="csrf" value="([^"]+)"', form)
        assert token is not None
        client.post("/signin", data={"csrf": token.group(1), "person": "kari", "password": GOOD})
        assert client.get("/", follow_redirects=False).status_code == 200
        out = trygg(site, "users", "disable", "kari")
        assert out.startswith("0|") and "1 web session(s) ended" in out
        assert client.get("/", follow_redirects=False).status_code == 303
    assert signs_in(site, engine, "kari") == 401
    assert "was disabled already" in trygg(site, "users", "disable", "kari")
    assert trygg(site, "users", "enable", "kari").startswith("0|")
    assert signs_in(site, engine, "kari") == 303


def test_help_says_how_scripts_give_the_password(site: Path) -> None:
    for command in ("add", "passwd"):
        shown = runner.invoke(cli, ["users", command, "--help"], env={"COLUMNS": "200"})
        assert "TRYGG_PASSWORD" in shown.stdout, command
