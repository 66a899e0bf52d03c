"""`trygg users`: the people who sign in: add, list, passwd, disable, enable.

``users add`` on a fresh site is how the first administrator is made. A password is asked
twice with a hidden prompt; a script sets the environment variable ``TRYGG_PASSWORD``
instead. Passwords are checked (``gateway.people.passwords.password_problem``) and stored as
argon2id hashes only.
"""

from __future__ import annotations

import getpass
import os
from typing import TYPE_CHECKING, Annotated, Final

import typer
from rich.table import Table

from gateway.cli.common import ConfigOption, JsonFlag, console, err, load, open_store, print_json

if TYPE_CHECKING:
    from gateway.store.writer import Tx

app = typer.Typer(
    help="People who sign in to the web pages and sign results: add, list, set passwords.",
    no_args_is_help=True,
)

PASSWORD_ENV: Final = "TRYGG_PASSWORD"
_PASSWORD_NOTE: Final = (
    f"The password is asked twice (hidden); for scripts, set {PASSWORD_ENV} instead."
)

ByOption = Annotated[
    str | None, typer.Option("--by", help="Who makes the change (audit log); default: you.")
]


def _actor(by: str | None) -> str:
    return f"cli:{by or getpass.getuser()}"


def _password(person: str) -> str:
    """The new password: ``TRYGG_PASSWORD`` or the hidden prompt (twice); checked."""
    from gateway.catalogue import text
    from gateway.people.passwords import MIN_LENGTH, password_problem

    password = os.environ.get(PASSWORD_ENV)
    if password is None:
        password = typer.prompt(f"Password for {person}", hide_input=True, confirmation_prompt=True)
    problem = password_problem(password, person)
    if problem is not None:
        err.print(f"[red]Error:[/] {text('en', f'password.{problem}', min=MIN_LENGTH)}")
        raise typer.Exit(2)
    return password


def _person_or_exit(found: bool, person: str) -> None:
    if not found:
        err.print(f"[red]Error:[/] no person {person!r} (add one with `trygg users add`)")
        raise typer.Exit(1)


@app.command("add", help=f"Add a person who signs in, with roles and a password. {_PASSWORD_NOTE}")
def users_add(
    person: Annotated[
        str, typer.Argument(help="The stable person ID (as in the competence records).")
    ],
    config: ConfigOption,
    name: Annotated[str, typer.Option("--name", help="Full name, as pages show it.")],
    roles: Annotated[
        str,
        typer.Option(
            "--roles",
            help="';'-separated: operator, verifier, supervisor, quality_manager, admin.",
        ),
    ],
    operator_id: Annotated[
        list[str] | None,
        typer.Option(
            "--operator-id",
            help="An operator ID this person uses: BH (any instrument) or BH@afinion-1; repeat.",
        ),
    ] = None,
    by: ByOption = None,
) -> None:
    """Add a person (refused when the person exists: use ``passwd`` or the competence import)."""
    from gateway.people.roles import parse_roles
    from gateway.store import people
    from gateway.store.signin import set_password
    from gateway.store.writer import run_in_transaction

    person = person.strip()
    if not person or len(person) > 64:
        err.print("[red]Error:[/] the person ID must be 1-64 characters")
        raise typer.Exit(2)
    try:
        wanted_roles = parse_roles(roles)
        ids = [people.parse_operator_id(text) for text in operator_id or []]
    except ValueError as exc:
        err.print(f"[red]Error:[/] {exc}")
        raise typer.Exit(2) from exc
    engine = open_store(load(config))
    with engine.connect() as conn:
        if people.get_user(conn, person) is not None:
            err.print(
                f"[red]Error:[/] {person!r} exists already: set a password with "
                f"`trygg users passwd {person}`"
            )
            raise typer.Exit(1)
    password = _password(person)
    actor = _actor(by)

    def add(tx: Tx) -> None:
        people.upsert_person(tx, person, name=name.strip(), roles=wanted_roles, actor=actor)
        if ids:
            people.set_operator_ids(tx, person, ids, actor=actor)
        set_password(tx, person, password, actor=actor)

    try:
        run_in_transaction(engine, add)
    except ValueError as exc:  # an operator ID another person holds
        err.print(f"[red]Error:[/] {exc}")
        raise typer.Exit(1) from exc
    shown_roles = ", ".join(sorted(r.value for r in wanted_roles)) or "none"
    console.print(f"Added [bold]{person}[/] ({name.strip()}), roles: {shown_roles}")


@app.command("list")
def users_list(config: ConfigOption, as_json: JsonFlag = False) -> None:
    """List people: roles, operator IDs, whether they can sign in (no password hashes)."""
    from gateway.store.people import list_people

    engine = open_store(load(config))
    with engine.connect() as conn:
        rows = list_people(conn)
    if as_json:
        print_json(
            [
                {k: row[k] for k in ("person", "name", "roles", "active", "can_sign_in")}
                | {"operator_ids": row["operator_ids"]}
                for row in rows
            ]
        )
        return
    table = Table("person", "name", "roles", "active", "password", "operator IDs")
    for row in rows:
        roles = row["roles"]
        ids = row["operator_ids"]
        assert isinstance(roles, list) and isinstance(ids, list)
        table.add_row(
            str(row["person"]),
            str(row["name"]),
            ";".join(roles),
            "yes" if row["active"] else "disabled",
            "set" if row["can_sign_in"] else "none yet",
            ", ".join(ids),
        )
    console.print(table)


@app.command("passwd", help=f"Set a person's password (and unlock them). {_PASSWORD_NOTE}")
def users_passwd(
    person: str,
    config: ConfigOption,
    by: ByOption = None,
) -> None:
    """Set a new password; the person's open web sessions end."""
    from gateway.store import people, sessions
    from gateway.store.signin import set_password
    from gateway.store.writer import run_in_transaction

    engine = open_store(load(config))
    with engine.connect() as conn:
        _person_or_exit(people.get_user(conn, person) is not None, person)
    password = _password(person)
    actor = _actor(by)

    def change(tx: Tx) -> bool:
        if not set_password(tx, person, password, actor=actor):
            return False
        sessions.end_all(tx, person, sessions.EndReason.NEW_PASSWORD, actor=actor)
        return True

    _person_or_exit(run_in_transaction(engine, change), person)
    console.print(f"Password set for [bold]{person}[/]")


def _set_active(person: str, active: bool, config: ConfigOption, by: str | None) -> None:
    from gateway.store import people, sessions
    from gateway.store.writer import run_in_transaction

    engine = open_store(load(config))
    with engine.connect() as conn:
        _person_or_exit(people.get_user(conn, person) is not None, person)
    actor = _actor(by)

    def job(tx: Tx) -> tuple[bool, int]:
        changed = people.set_active(tx, person, active, actor=actor)
        ended = (
            0 if active else sessions.end_all(tx, person, sessions.EndReason.DISABLED, actor=actor)
        )
        return changed, ended

    changed, ended = run_in_transaction(engine, job)
    word = "enabled" if active else "disabled"
    if not changed:
        console.print(f"{person} was {word} already")
    else:
        sessions_note = f"; {ended} web session(s) ended" if ended else ""
        console.print(f"[bold]{person}[/] {word}{sessions_note}")


@app.command("disable")
def users_disable(person: str, config: ConfigOption, by: ByOption = None) -> None:
    """Disable a person: no sign-in, no signature, open web sessions end, and their operator
    IDs no longer make them a certified performer."""
    _set_active(person, False, config, by)


@app.command("enable")
def users_enable(person: str, config: ConfigOption, by: ByOption = None) -> None:
    """Enable a disabled person again."""
    _set_active(person, True, config, by)
