"""`trygg access-log`: who read or changed which patient's results (Normen); a patient's extract.

With ``--patient`` the answer is the extract for one patient (the full ID, as asked), and the
search itself is logged as an ``export`` by the person running the command; without it, the
newest accesses with patient IDs masked.
"""

from __future__ import annotations

import functools
import getpass
from typing import Annotated, Any

import typer
from rich.table import Table

from gateway.cli.common import ConfigOption, JsonFlag, console, load, open_store, print_json


def access_log(
    config: ConfigOption,
    patient: Annotated[
        str | None,
        typer.Option("--patient", help="The extract for this patient ID (the search is logged)."),
    ] = None,
    person: Annotated[
        str | None, typer.Option("--person", help="Only this person's accesses.")
    ] = None,
    limit: Annotated[int, typer.Option(help="Newest N rows.", min=1)] = 200,
    by: Annotated[
        str | None, typer.Option("--by", help="Who asks, for the log of the search; default: you.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """The access log: every look at or change of a patient's results, newest first."""
    from gateway.national_id import mask
    from gateway.store import access
    from gateway.store.writer import run_in_transaction

    engine = open_store(load(config))
    rows: list[dict[str, Any]]
    if patient is not None:
        patient = patient.strip()
        run_in_transaction(
            engine,
            functools.partial(
                access.log_access,
                person=f"cli:{by or getpass.getuser()}",
                action=access.AccessAction.EXPORT,
                route="trygg access-log --patient",
                result_id=None,
                patient_id=patient,
                detail="per-patient access extract",
            ),
        )
        with engine.connect() as conn:
            rows = access.by_patient(conn, patient, limit=limit)
        if person:
            rows = [r for r in rows if r["person"] == person]
    else:
        with engine.connect() as conn:
            rows = access.recent(conn, person=person or "", limit=limit)
        rows = [{**r, "patient_id": mask(r["patient_id"])} for r in rows]
    if as_json:
        print_json([{**r, "at": r["at"].isoformat()} for r in rows])
        return
    table = Table("time (UTC)", "person", "name", "action", "result", "patient", "route")
    for r in rows:
        table.add_row(
            r["at"].strftime("%Y-%m-%d %H:%M:%S"),
            r["person"],
            r["name"],
            r["action"],
            str(r["result_id"] or r["detail"] or "-"),
            r["patient_id"] or "-",
            r["route"],
        )
    console.print(table)
