"""Every route of the app, with every role and with no session, against a table written here.

The expected table is written by hand from the design (who may read patients' results, raw
bytes, the access log), not derived from ``gateway.web.access``: a change to the code's table
that this table does not share fails here. A route the app gains without a line here fails too.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Final

import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from sqlalchemy import Engine, select
from starlette.routing import Mount

from gateway.catalogue import text
from gateway.config import Config
from gateway.people.roles import Role
from gateway.store.tables import quarantine
from gateway.web import access
from gateway.web.app import create_app
from gateway.web.auth import SIGNIN_COOKIE, RouteTableError, check_routes
from tests.web.conftest import LOCAL, Seeded, open_session, use_session

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

EVERYONE: Final = frozenset({"anonymous", *Role})
SIGNED_IN: Final = frozenset(Role)
READERS: Final = frozenset({Role.OPERATOR, Role.VERIFIER, Role.SUPERVISOR, Role.QUALITY_MANAGER})
RAW: Final = frozenset({Role.VERIFIER, Role.SUPERVISOR, Role.QUALITY_MANAGER})
ACCESS_LOG: Final = frozenset({Role.QUALITY_MANAGER, Role.ADMIN})
# pages-people: everyone's certifications (staff data); changing the competence records
PEOPLE: Final = frozenset({Role.VERIFIER, Role.SUPERVISOR, Role.QUALITY_MANAGER, Role.ADMIN})
COMPETENCE: Final = frozenset({Role.QUALITY_MANAGER, Role.ADMIN})
QC_READERS: Final = READERS | {Role.ADMIN}
QC_SIGNERS: Final = frozenset({Role.SUPERVISOR, Role.QUALITY_MANAGER})
EQA_MANAGERS: Final = frozenset({Role.QUALITY_MANAGER, Role.SUPERVISOR})
# the deviation register: who handles a deviation
HANDLERS: Final = frozenset({Role.SUPERVISOR, Role.QUALITY_MANAGER})

#: (method, path template) -> who may open it ("anonymous": without a session)
EXPECTED: Final[dict[tuple[str, str], frozenset[str]]] = {
    ("GET", "/static"): EVERYONE,
    ("GET", "/api/health"): EVERYONE,
    ("GET", "/signin"): EVERYONE,
    ("POST", "/signin"): EVERYONE,
    ("POST", "/signout"): SIGNED_IN,
    ("GET", "/docs"): SIGNED_IN,
    ("GET", "/openapi.json"): SIGNED_IN,
    ("GET", "/api/summary"): SIGNED_IN,
    ("GET", "/api/instruments"): SIGNED_IN,
    ("GET", "/"): READERS,
    ("GET", "/results"): READERS,
    ("GET", "/results/{result_id}"): READERS,
    ("GET", "/orders"): READERS,
    ("GET", "/outbox"): READERS,
    ("GET", "/quarantine"): READERS,
    ("GET", "/quarantine/{quarantine_id}"): READERS,
    ("GET", "/deviations"): READERS,
    ("GET", "/api/results"): READERS,
    ("GET", "/api/results/{result_id}"): READERS,
    ("GET", "/api/orders"): READERS,
    ("GET", "/api/outbox"): READERS,
    ("GET", "/api/quarantine"): READERS,
    ("GET", "/api/quarantine/{quarantine_id}"): READERS,
    ("GET", "/api/deviations"): READERS,
    ("GET", "/quarantine/{quarantine_id}/raw"): RAW,
    ("GET", "/api/quarantine/{quarantine_id}/raw"): RAW,
    ("GET", "/access-log"): ACCESS_LOG,
    ("GET", "/access-log/patient"): ACCESS_LOG,
    ("POST", "/access-log/patient"): ACCESS_LOG,
    # issue 10: pages-work. The queues and the entry form: whoever works with results (each
    # row says why the viewer may not act on it); each signed action: the roles the design
    # names for it on some hold (DOMAIN rules 2, 4, 5; admin signs no result)
    ("GET", "/my-work"): READERS,
    ("GET", "/held"): READERS,
    ("GET", "/verify"): READERS,
    ("GET", "/cosign"): READERS,
    ("GET", "/entry"): READERS,
    ("POST", "/entry"): READERS,
    ("POST", "/results/{result_id}/release"): RAW,
    ("POST", "/results/{result_id}/correct"): RAW,
    ("POST", "/results/{result_id}/override"): frozenset({Role.SUPERVISOR, Role.QUALITY_MANAGER}),
    ("POST", "/results/{result_id}/verify"): frozenset({Role.VERIFIER}),
    ("POST", "/results/{result_id}/reject"): frozenset({Role.VERIFIER}),
    ("POST", "/results/{result_id}/cosign"): frozenset({Role.SUPERVISOR}),
    # pages-people (/people/{person} walked with another person than the viewer: an
    # operator sees only their own, test_people_pages checks that)
    ("GET", "/people"): PEOPLE,
    ("GET", "/people/{person}"): PEOPLE,
    ("GET", "/my-certifications"): SIGNED_IN,
    ("GET", "/recert"): PEOPLE,
    ("GET", "/recert/sign"): SIGNED_IN,
    ("POST", "/recert/sign"): SIGNED_IN,
    ("GET", "/people/import"): COMPETENCE,
    ("POST", "/people/import"): COMPETENCE,
    ("POST", "/people/import/apply"): COMPETENCE,
    ("GET", "/people/export.csv"): COMPETENCE,
    # issue 11: the QC pages (no patient data: admin reads them too; lots, targets and a
    # lockout's signed forms are the supervisor's and the quality manager's)
    ("GET", "/qc"): QC_READERS,
    ("GET", "/api/qc/status"): QC_READERS,
    ("GET", "/qc/lockouts/{lockout_id}"): QC_READERS,
    ("POST", "/qc/lockouts/{lockout_id}/corrective-action"): QC_SIGNERS,
    ("POST", "/qc/lockouts/{lockout_id}/release"): QC_SIGNERS,
    ("GET", "/qc/lots"): QC_READERS,
    ("GET", "/qc/lots/new"): QC_SIGNERS,
    ("POST", "/qc/lots/new"): QC_SIGNERS,
    ("GET", "/qc/lots/{lot_id}"): QC_READERS,
    ("POST", "/qc/lots/{lot_id}/edit"): QC_SIGNERS,
    ("POST", "/qc/lots/{lot_id}/target"): QC_SIGNERS,
    ("GET", "/qc/entry"): READERS,
    ("POST", "/qc/entry"): READERS,
    # issue 11: charts. The charts, the report and a comment on a control point: whoever
    # runs, checks or answers for QC (admin reads no lab data)
    ("GET", "/qc/chart"): READERS,
    ("GET", "/qc/chart.svg"): READERS,
    ("POST", "/qc/points/{qc_result_id}/comment"): READERS,
    ("GET", "/qc/report"): READERS,
    ("GET", "/qc/report.pdf"): READERS,
    # issue 11: EQA (EKV); registering and assessing: quality manager, supervisor; values,
    # the signed answer and split samples: verifier, supervisor, quality manager
    ("GET", "/eqa"): READERS,
    ("POST", "/eqa/register"): EQA_MANAGERS,
    ("GET", "/eqa/split"): READERS,
    ("POST", "/eqa/split/record"): RAW,
    ("GET", "/eqa/{round_id}"): READERS,
    ("POST", "/eqa/{round_id}/samples"): EQA_MANAGERS,
    ("POST", "/eqa/{round_id}/value"): RAW,
    ("POST", "/eqa/{round_id}/answered"): RAW,
    ("POST", "/eqa/{round_id}/assess"): EQA_MANAGERS,
    ("GET", "/eqa/{round_id}/answer"): READERS,
    ("GET", "/eqa/{round_id}/answer.csv"): READERS,
    ("GET", "/qc/export"): READERS,
    # issue 11: the deviation register. Reporting, an immediate action and a comment: whoever
    # works with results (a reporting culture); handling, moving, closing and the export for
    # the practice meeting: supervisor and quality manager; reopening: the quality manager
    ("GET", "/deviations/new"): READERS,
    ("POST", "/deviations/new"): READERS,
    ("GET", "/deviations/{deviation_id}"): READERS,
    ("POST", "/deviations/{deviation_id}/immediate-action"): READERS,
    ("POST", "/deviations/{deviation_id}/comment"): READERS,
    ("POST", "/deviations/{deviation_id}/handling"): HANDLERS,
    ("POST", "/deviations/{deviation_id}/start"): HANDLERS,
    ("POST", "/deviations/{deviation_id}/close"): HANDLERS,
    ("POST", "/deviations/{deviation_id}/reopen"): frozenset({Role.QUALITY_MANAGER}),
    ("GET", "/deviations/export.csv"): HANDLERS,
    ("GET", "/deviations/export.xlsx"): HANDLERS,
}

#: the pages every role that works with results has in its navigation
WORK_NAV: Final = {
    "/my-work",
    "/",
    "/results",
    "/held",
    "/verify",
    "/cosign",
    "/entry",
    "/orders",
    "/outbox",
    "/quarantine",
    "/deviations",
    "/qc",
}
#: the nav entries each role sees (hidden: the pages it may not open)
NAV_FOR: Final[dict[Role, set[str]]] = {
    Role.OPERATOR: WORK_NAV,
    Role.VERIFIER: WORK_NAV,
    Role.SUPERVISOR: WORK_NAV,
    Role.QUALITY_MANAGER: {*WORK_NAV, "/access-log"},
    Role.ADMIN: {"/access-log", "/qc"},
}
# pages-people: the certification pages each role sees in the nav
for _role in Role:
    NAV_FOR[_role] = (
        NAV_FOR[_role]
        | {"/my-certifications"}
        | ({"/people", "/recert"} if _role in PEOPLE else set())
        | ({"/eqa"} if _role in READERS else set())  # issue 11
    )


@pytest.fixture
def client(web_config: Config, web_engine: Engine, seeded: Seeded) -> Iterator[TestClient]:
    with TestClient(create_app(web_config, web_engine), base_url=LOCAL) as test_client:
        yield test_client


def walked_routes(client: TestClient) -> list[tuple[str, str]]:
    """(method, template) for every route of the app, read from ``app.routes``."""
    found: list[tuple[str, str]] = []
    for context in iter_route_contexts(client.app.routes):  # type: ignore[attr-defined]
        route = context.original_route
        if isinstance(route, Mount):
            found.append(("GET", str(context.path)))
        else:
            assert isinstance(route, APIRoute), route
            found.extend((method, str(context.path)) for method in sorted(context.methods or ()))
    return found


def concrete(template: str, seeded: Seeded, quarantine_id: int) -> str:
    if template == "/static":
        return "/static/trygg.css"
    return (
        template.replace("{result_id}", str(seeded.invalid_patient))
        .replace("{quarantine_id}", str(quarantine_id))
        .replace("{lockout_id}", "1")  # issue 11: no such lockout or lot (404)
        .replace("{lot_id}", "1")
        .replace("{person}", "someone-else")  # pages-people: never the viewer
        .replace("{qc_result_id}", "1")  # issue 11: charts
        .replace("{round_id}", "1")  # issue 11: an EQA round (none: the page says so)
        .replace("{deviation_id}", "1")  # the seeded LIS rejection's deviation
    )


def denied_for_no_session(path: str, status: int, location: str, body: str) -> bool:
    if path.startswith("/api/") or path == "/openapi.json":
        return status == 401 and text("en", "auth.api_signin") in body
    return status == 303 and location.startswith("/signin")


def forbidden(status: int, body: str) -> bool:
    return status == 403 and (
        text("en", "auth.forbidden") in body or text("nb", "auth.forbidden") in body
    )


def test_the_walk_covers_exactly_the_expected_routes(client: TestClient) -> None:
    walked = walked_routes(client)
    assert len(walked) == len(set(walked))
    assert set(walked) == set(EXPECTED), "a route was added or removed: update EXPECTED"


@pytest.mark.parametrize("who", ["anonymous", *Role])
def test_every_route_with_every_role(
    client: TestClient, web_engine: Engine, seeded: Seeded, who: str
) -> None:
    with web_engine.connect() as conn:
        quarantine_id = int(conn.execute(select(quarantine.c.id)).scalars().first() or 0)
    assert quarantine_id
    outcomes: dict[tuple[str, str], str] = {}
    for method, template in walked_routes(client):
        path = concrete(template, seeded, quarantine_id)
        client.cookies.clear()
        headers: dict[str, str] = {}
        data: dict[str, str] = {}
        if who != "anonymous":
            # a fresh session per request: /signout ends the one it is sent with
            signed = open_session(web_engine, f"only-{who}", [Role(who)])
            use_session(client, signed.token)
            headers["x-csrf-token"] = signed.csrf
        if (method, template) == ("POST", "/signin"):
            client.cookies.set(SIGNIN_COOKIE, "t" * 43, path="/signin")
            data = {"csrf": "t" * 43, "person": "nobody", "password": "not a password"}
        response = client.request(
            method, path, headers=headers, data=data or None, follow_redirects=False
        )
        location = response.headers.get("location", "")
        if who == "anonymous" and denied_for_no_session(
            path, response.status_code, location, response.text
        ):
            outcomes[(method, template)] = "denied"
        elif forbidden(response.status_code, response.text):
            outcomes[(method, template)] = "forbidden"
        else:
            assert response.status_code < 500, (method, path, response.status_code)
            assert response.status_code not in (401, 403) or template == "/signin", (
                method,
                path,
                response.status_code,
            )
            outcomes[(method, template)] = "allowed"
    expected = {
        key: ("allowed" if who in allowed else "denied" if who == "anonymous" else "forbidden")
        for key, allowed in EXPECTED.items()
    }
    assert outcomes == expected


@pytest.mark.parametrize("role", list(Role))
def test_the_nav_shows_only_what_the_role_may_open(
    client: TestClient, web_engine: Engine, role: Role
) -> None:
    signed = open_session(web_engine, f"nav-{role}", [role])
    use_session(client, signed.token)
    html = client.get("/docs").text
    nav = html.split('<nav class="nav"', 1)[1].split("</nav>", 1)[0]
    shown = {part.split('"', 1)[0] for part in nav.split('href="')[1:]}
    assert shown == NAV_FOR[role]


def test_a_person_without_roles_reaches_only_the_signed_in_routes(
    client: TestClient, web_engine: Engine
) -> None:
    signed = open_session(web_engine, "nobody-special", [])
    use_session(client, signed.token)
    assert client.get("/docs").status_code == 200
    assert client.get("/api/summary").status_code == 200
    assert forbidden(client.get("/results").status_code, client.get("/results").text)
    assert client.get("/api/results").status_code == 403


def test_an_app_with_an_unlisted_route_refuses_to_start(
    web_config: Config, web_engine: Engine
) -> None:
    app = create_app(web_config, web_engine)

    @app.get("/secret-page")
    async def secret() -> dict[str, str]:  # pragma: no cover - never served
        return {"patient": "everything"}

    with pytest.raises(RouteTableError, match="/secret-page"):
        check_routes(app)


def test_a_route_outside_the_guard_refuses_to_start(web_config: Config, web_engine: Engine) -> None:
    app = create_app(web_config, web_engine)
    app.add_route("/raw-starlette", lambda request: None)  # no dependencies: escapes the guard
    with pytest.raises(RouteTableError, match="/raw-starlette"):
        check_routes(app)


def test_roles_follow_the_store_at_the_next_request(client: TestClient, web_engine: Engine) -> None:
    signed = open_session(web_engine, "changing", [Role.ADMIN])
    use_session(client, signed.token)
    assert client.get("/results").status_code == 403
    open_session(web_engine, "changing", [Role.OPERATOR])  # roles changed (a new session too)
    assert client.get("/results").status_code == 200  # the old session sees the new roles


def test_the_code_table_names_every_role_it_uses() -> None:
    """A sanity check of the code's table shape (the matrix above is the real test)."""
    for rule in access.ROUTE_ROLES.values():
        assert rule in (access.PUBLIC, access.SIGNED_IN) or (
            isinstance(rule, frozenset) and rule and rule <= set(Role)
        )
