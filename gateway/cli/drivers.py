"""`trygg drivers`: the driver keys this build registers."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from gateway.cli.common import JsonFlag, console, print_json


def list_drivers(as_json: JsonFlag = False) -> None:
    """List the registered driver keys."""
    from drivers.registry import DRIVERS

    rows: list[dict[str, Any]] = [
        {
            "key": s.key,
            "protocol": s.protocol,
            "roles": list(s.roles),
            "description": s.description,
            "qc": s.qc_recognition,
        }
        for s in DRIVERS.values()
    ]
    if as_json:
        print_json(rows)
        return
    table = Table("driver", "protocol", "roles", "description", "QC")
    for row in rows:
        table.add_row(
            row["key"], row["protocol"], ", ".join(row["roles"]), row["description"], row["qc"]
        )
    console.print(table)
