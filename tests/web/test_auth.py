"""Signing in and out over the real app and store: CSRF, session fixation, lockout, idle and
absolute expiry, sign-out on the server, ``next`` only to a local path, the e-signature check."""

from __future__ import annotations

import asyncio
import hashlib
import re
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select

from gateway.config import Config
from gateway.people.roles import Role
from gateway.store import sessions
from gateway.store.signin import SignIn
from gateway.store.tables import access_log, audit, web_sessions
from gateway.web.app import create_app
from gateway.web.auth import SESSION_COOKIE, SIGNIN_COOKIE
from gateway.web.context import WebContext
from gateway.web.routes.signin import safe_next
from gateway.web.signature import confirm_signature, refusal_text
from gateway.web.viewer import Viewer
from tests.web.conftest import (
    LOCAL,
    PASSWORD,
    T0,
    Clock,
    Seeded,
    add_person,
    make_config,
    open_session,
    use_session,
)

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

KARI = "kari"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def people_config(**people: int) -> Config:
    config = make_config()
    return config.model_copy(update={"people": config.people.model_copy(update=people)})


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def client(web_engine: Engine, seeded: Seeded, clock: Clock) -> Iterator[TestClient]:
    add_person(web_engine, KARI, [Role.SUPERVISOR], name="Kari Nordmann", password=PASSWORD)
    app = create_app(people_config(login_attempts=3, lockout_minutes=2), web_engine)
    app.state.web.clock = clock
    with TestClient(app, base_url=LOCAL) as test_client:
        yield test_client


def form_csrf(client: TestClient, path: str = "/signin") -> str:
    """The CSRF token of the page's main form (on /signin: the sign-in form's own, not the
    header's sign-out form's, which a signed-in page also has)."""
    html = client.get(path).text
    if path == "/signin":
        html = html.split('class="signin-form"', 1)[1]
    found = _CSRF.search(html)
    assert found is not None
    return found.group(1)


def sign_in_form(
    client: TestClient, person: str = KARI, password: str = PASSWORD, next_path: str = ""
) -> tuple[int, str, str]:
    """GET the form, POST it; (status, Location, body)."""
    token = form_csrf(client)
    response = client.post(
        "/signin",
        data={"csrf": token, "person": person, "password": password, "next": next_path},
        follow_redirects=False,
    )
    return response.status_code, response.headers.get("location", ""), response.text


def session_cookie(client: TestClient) -> str:
    return str(client.cookies.get(SESSION_COOKIE) or "")


def rows(engine: Engine, table: object, *where: object) -> list[dict[str, object]]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(table).where(*where)).mappings()]  # type: ignore[call-overload]


# --- sign-in ---------------------------------------------------------------------------------


def test_sign_in_sets_a_strict_http_only_cookie_and_goes_to_next(client: TestClient) -> None:
    status, location, _ = sign_in_form(client, next_path="/results?state=held")
    assert (status, location) == (303, "/results?state=held")
    cookie = next(
        c for c in client.cookies.jar if c.name == SESSION_COOKIE
    )  # the browser's view of it
    assert cookie.path == "/" and not cookie.secure
    assert cookie.has_nonstandard_attr("HttpOnly")
    assert client.get("/results").status_code == 200
    page = client.get("/").text
    assert "Innlogget: Kari Nordmann" in page and 'action="/signout"' in page


def test_the_cookie_attributes_in_the_header(client: TestClient) -> None:
    token = form_csrf(client)
    response = client.post(
        "/signin",
        data={"csrf": token, "person": KARI, "password": PASSWORD},
        follow_redirects=False,
    )
    header = next(
        v for k, v in response.headers.multi_items() if k == "set-cookie" and SESSION_COOKIE in v
    )
    assert "HttpOnly" in header and "SameSite=strict" in header and "Path=/" in header
    assert "Secure" not in header  # plain http here; over https the cookie is Secure
    assert "Max-Age" not in header and "expires" not in header.lower()
    assert response.headers["location"] == "/my-work"  # a supervisor starts on their work


def test_the_store_keeps_only_the_tokens_hash(client: TestClient, web_engine: Engine) -> None:
    sign_in_form(client)
    token = session_cookie(client)
    (row,) = rows(web_engine, web_sessions, web_sessions.c.person == KARI)
    assert row["token_hash"] == hashlib.sha256(token.encode()).hexdigest()
    assert token not in {str(v) for v in row.values()}
    assert row["client"] == "testclient"


def test_wrong_password_and_unknown_person_read_the_same(client: TestClient) -> None:
    wrong = sign_in_form(client, password="not the password at all")
    unknown = sign_in_form(client, person="ghost", password="not the password at all")
    assert wrong[0] == unknown[0] == 401
    assert "Feil bruker-ID eller passord." in wrong[2]
    assert "Feil bruker-ID eller passord." in unknown[2]
    assert not session_cookie(client)


def test_a_disabled_person_gets_the_generic_text(client: TestClient, web_engine: Engine) -> None:
    from gateway.store import people
    from gateway.store.writer import run_in_transaction

    run_in_transaction(web_engine, lambda tx: people.set_active(tx, KARI, False, actor="t"))
    status, _, body = sign_in_form(client)
    assert status == 401 and "Feil bruker-ID eller passord." in body


def test_a_person_without_a_password_is_told_so(client: TestClient, web_engine: Engine) -> None:
    add_person(web_engine, "imported", [Role.OPERATOR])  # from the competence records
    status, _, body = sign_in_form(client, person="imported", password="anything at all")
    assert status == 401
    assert "har ikke fått passord ennå" in body and "trygg users passwd" in body


def test_sign_in_and_out_are_audited(client: TestClient, web_engine: Engine) -> None:
    sign_in_form(client)
    token = form_csrf(client, "/docs")
    client.post("/signout", data={"csrf": token}, follow_redirects=False)
    actions = [r["action"] for r in rows(web_engine, audit, audit.c.actor == KARI)]
    assert actions == ["user.sign_in", "session.started", "user.sign_out"]


# --- CSRF ------------------------------------------------------------------------------------


def test_a_post_without_or_with_a_wrong_csrf_token_is_refused(
    client: TestClient, web_engine: Engine
) -> None:
    sign_in_form(client)
    good = form_csrf(client, "/docs")
    for data, headers in (({}, {}), ({"csrf": "x" * 43}, {}), ({}, {"x-csrf-token": "nope"})):
        response = client.post("/signout", data=data, headers=headers, follow_redirects=False)
        assert response.status_code == 403, (data, headers)
        assert "Skjemaet var utløpt" in response.text
    assert client.get("/").status_code == 200  # still signed in: nothing was done
    response = client.post("/signout", data={"csrf": good}, follow_redirects=False)
    assert response.status_code == 303
    assert client.get("/", follow_redirects=False).status_code == 303


def test_the_csrf_header_is_accepted_and_another_sessions_token_is_not(
    client: TestClient, web_engine: Engine
) -> None:
    mine = open_session(web_engine, "anna", [Role.QUALITY_MANAGER])
    other = open_session(web_engine, "bert", [Role.QUALITY_MANAGER])
    use_session(client, mine.token)
    refused = client.post(
        "/access-log/patient", data={"patient": "x"}, headers={"x-csrf-token": other.csrf}
    )
    assert refused.status_code == 403
    assert rows(web_engine, access_log) == []  # the refused search logged nothing
    accepted = client.post(
        "/access-log/patient", data={"patient": "x"}, headers={"x-csrf-token": mine.csrf}
    )
    assert accepted.status_code == 200


def test_the_api_answers_json_to_a_csrf_or_session_problem(client: TestClient) -> None:
    missing = client.get("/api/results")
    assert missing.status_code == 401
    assert missing.json() == {
        "detail": "Sign in first: the API reads the session cookie that /signin sets."
    }


def test_the_sign_in_form_has_its_own_csrf_token(client: TestClient) -> None:
    # no pre-session cookie (a form posted from another site): refused before any check
    response = client.post("/signin", data={"csrf": "a" * 43, "person": KARI, "password": PASSWORD})
    assert response.status_code == 403 and not session_cookie(client)
    # the cookie, but another token
    form_csrf(client)
    response = client.post("/signin", data={"csrf": "b" * 43, "person": KARI, "password": PASSWORD})
    assert response.status_code == 403 and not session_cookie(client)
    assert client.cookies.get(SIGNIN_COOKIE)


# --- session fixation ------------------------------------------------------------------------


def test_a_presented_session_is_ended_and_a_new_token_issued(
    client: TestClient, web_engine: Engine
) -> None:
    planted = open_session(web_engine, "mallory", [Role.OPERATOR])  # a session the attacker knows
    use_session(client, planted.token)
    status, _, _ = sign_in_form(client)
    assert status == 303
    issued = session_cookie(client)
    assert issued and issued != planted.token
    # the planted token no longer opens anything, for anyone
    with TestClient(client.app, base_url=LOCAL) as attacker:
        use_session(attacker, planted.token)
        assert attacker.get("/", follow_redirects=False).status_code == 303
    (ended,) = rows(web_engine, web_sessions, web_sessions.c.id == planted.session_id)
    assert ended["end_reason"] == "replaced" and ended["ended_at"] is not None
    assert "Kari Nordmann" in client.get("/").text


def test_an_unknown_planted_token_is_replaced_too(client: TestClient) -> None:
    use_session(client, "planted-by-someone-else")
    sign_in_form(client)
    assert session_cookie(client) not in ("", "planted-by-someone-else")


def test_every_sign_in_gets_a_new_token(client: TestClient) -> None:
    sign_in_form(client)
    first = session_cookie(client)
    sign_in_form(client)
    second = session_cookie(client)
    assert first and second and first != second
    with TestClient(client.app, base_url=LOCAL) as old:
        use_session(old, first)
        assert old.get("/", follow_redirects=False).status_code == 303


def test_a_failed_sign_in_still_ends_the_presented_session(
    client: TestClient, web_engine: Engine
) -> None:
    planted = open_session(web_engine, "mallory", [Role.OPERATOR])
    use_session(client, planted.token)
    status, _, _ = sign_in_form(client, password="wrong wrong wrong")
    assert status == 401
    assert not session_cookie(client)  # cleared
    (ended,) = rows(web_engine, web_sessions, web_sessions.c.id == planted.session_id)
    assert ended["end_reason"] == "replaced"


# --- lockout ---------------------------------------------------------------------------------


def test_repeated_wrong_passwords_lock_until_the_lockout_ends(
    client: TestClient, clock: Clock
) -> None:
    for _ in range(2):
        assert "Feil bruker-ID" in sign_in_form(client, password="wrong password 1")[2]
    status, _, body = sign_in_form(client, password="wrong password 1")  # the 3rd: locked
    # locked at 09:30 UTC for 2 minutes: shown in Oslo time (UTC+1 in January)
    assert status == 401 and "sperret til 15.01.2026 10:32:00 (Europe/Oslo)" in body
    clock.advance(minutes=1)
    status, _, body = sign_in_form(client)  # the right password, still refused
    assert status == 401 and "sperret til 15.01.2026 10:32:00" in body
    assert not session_cookie(client)
    clock.advance(minutes=1, seconds=1)
    assert sign_in_form(client)[0] == 303  # the lockout has ended
    assert client.get("/").status_code == 200


def test_the_lock_text_in_english(client: TestClient) -> None:
    for _ in range(3):
        sign_in_form(client, password="wrong password 1")
    client.cookies.set("trygg_lang", "en")
    body = sign_in_form(client)[2]
    assert "locked until 2026-01-15 10:32:00 (Europe/Oslo)" in body


# --- expiry and sign-out ---------------------------------------------------------------------


def test_a_session_ends_after_idle_minutes_and_activity_slides_it(
    client: TestClient, clock: Clock, web_engine: Engine
) -> None:
    sign_in_form(client)  # at 09:30, idle 15 minutes
    clock.advance(minutes=14)
    assert client.get("/").status_code == 200  # 09:44: activity, now valid to 09:59
    clock.advance(minutes=14)
    assert client.get("/").status_code == 200  # 09:58
    clock.advance(minutes=15, seconds=1)  # 10:13:01, one second past 10:13
    response = client.get("/results?state=held", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/signin?next=%2Fresults%3Fstate%3Dheld&ended=idle"
    (row,) = rows(web_engine, web_sessions, web_sessions.c.person == KARI)
    assert row["end_reason"] == "idle"
    assert row["ended_at"] == datetime(2026, 1, 15, 10, 13, tzinfo=UTC)  # when it expired
    notice = client.get(response.headers["location"]).text
    assert "avsluttet etter 15 minutter uten aktivitet" in notice


def test_the_pages_own_refresh_does_not_keep_a_session_alive(
    client: TestClient, clock: Clock
) -> None:
    sign_in_form(client)
    refresh = {"x-trygg-refresh": "1"}
    for _ in range(3):
        clock.advance(minutes=5)
        assert client.get("/", headers=refresh).status_code == 200  # 09:35, 09:40, 09:45
    clock.advance(seconds=1)
    assert client.get("/", headers=refresh, follow_redirects=False).status_code == 303


def test_a_session_ends_after_max_hours_whatever_the_activity(
    web_engine: Engine, seeded: Seeded, clock: Clock
) -> None:
    app = create_app(people_config(session_max_hours=1), web_engine)
    app.state.web.clock = clock
    with TestClient(app, base_url=LOCAL) as client:
        signed = open_session(web_engine, "busy", [Role.OPERATOR], now=clock.now)
        use_session(client, signed.token)
        for _ in range(5):
            clock.advance(minutes=11)
            assert client.get("/").status_code == 200  # 55 minutes of activity
        clock.advance(minutes=5)
        response = client.get("/", follow_redirects=False)
        assert response.headers["location"] == "/signin?next=%2F&ended=max"
    (row,) = rows(web_engine, web_sessions, web_sessions.c.id == signed.session_id)
    assert row["end_reason"] == "max" and row["ended_at"] == T0 + timedelta(hours=1)


def test_sign_out_ends_the_session_on_the_server(client: TestClient, web_engine: Engine) -> None:
    sign_in_form(client)
    token = session_cookie(client)
    csrf = form_csrf(client, "/docs")
    response = client.post("/signout", data={"csrf": csrf}, follow_redirects=False)
    assert response.headers["location"] == "/signin?signed_out=1"
    assert not session_cookie(client)  # the browser is told to forget it
    use_session(client, token)  # ... but the old cookie is kept and replayed
    assert client.get("/", follow_redirects=False).status_code == 303
    assert client.get("/api/summary").status_code == 401
    (row,) = rows(web_engine, web_sessions, web_sessions.c.person == KARI)
    assert row["end_reason"] == "signed_out"
    assert "Du er logget ut." in client.get("/signin?signed_out=1").text


def test_a_disabled_persons_session_ends_at_the_next_request(
    client: TestClient, web_engine: Engine
) -> None:
    from gateway.store import people
    from gateway.store.writer import run_in_transaction

    sign_in_form(client)
    run_in_transaction(web_engine, lambda tx: people.set_active(tx, KARI, False, actor="t"))
    assert client.get("/", follow_redirects=False).status_code == 303
    (row,) = rows(web_engine, web_sessions, web_sessions.c.person == KARI)
    assert row["end_reason"] == "disabled"


# --- had_active_session (the co-signature's question) ----------------------------------------


def test_had_active_session_covers_creation_to_end_or_expiry(
    client: TestClient, clock: Clock, web_engine: Engine
) -> None:
    def had(at: datetime, person: str = KARI) -> bool:
        with web_engine.connect() as conn:
            return sessions.had_active_session(conn, person, at)

    assert not had(T0)
    sign_in_form(client)  # 09:30
    clock.advance(minutes=10)
    client.get("/")  # 09:40: expires 09:55 unless touched again
    assert had(T0) and had(T0 + timedelta(minutes=24)) and had(T0 + timedelta(minutes=25))
    assert not had(T0 - timedelta(seconds=1)) and not had(T0 + timedelta(minutes=26))
    assert not had(T0 + timedelta(minutes=5), person="someone-else")
    clock.advance(minutes=5)
    client.post("/signout", data={"csrf": form_csrf(client, "/docs")})  # 09:45
    assert had(T0 + timedelta(minutes=15)) and not had(T0 + timedelta(minutes=16))


# --- next: only a local path -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("/results?state=held", "/results?state=held"),
        ("/", "/"),
        ("", ""),
        ("https://evil.example.com/", ""),
        ("//evil.example.com/x", ""),
        ("/\\evil.example.com", ""),
        ("results", ""),
        ("/signin?next=/", ""),
        ("/signout", ""),
        ("/ok\r\nSet-Cookie: x=1", ""),
        ("javascript:alert(1)", ""),
    ],
)
def test_next_goes_only_to_a_local_path(given: str, kept: str) -> None:
    assert safe_next(given) == kept


def test_an_outside_next_lands_on_the_start_page(client: TestClient) -> None:
    assert sign_in_form(client, next_path="https://evil.example.com/")[1] == "/my-work"


def test_an_admin_lands_where_they_may_go(client: TestClient, web_engine: Engine) -> None:
    add_person(web_engine, "ada", [Role.ADMIN], password=PASSWORD)
    assert sign_in_form(client, person="ada")[1] == "/access-log"


# --- the e-signature -------------------------------------------------------------------------


def test_a_signature_re_asks_the_password_and_locks_like_sign_in(
    web_engine: Engine, seeded: Seeded, clock: Clock
) -> None:
    add_person(web_engine, KARI, [Role.SUPERVISOR], name="Kari", password=PASSWORD)
    web = WebContext(people_config(login_attempts=2, lockout_minutes=5), web_engine, None)
    web.clock = clock
    signed = open_session(web_engine, KARI, [Role.SUPERVISOR], now=clock.now)
    viewer = Viewer(
        KARI, "Kari", frozenset({Role.SUPERVISOR}), True, signed.csrf, signed.session_id
    )

    def sign(password: str, who: Viewer = viewer) -> SignIn:
        return asyncio.run(confirm_signature(web, who, password)).outcome

    assert sign(PASSWORD) is SignIn.OK
    assert sign("") is SignIn.WRONG  # no attempt counted for an empty password
    assert sign(PASSWORD, Viewer()) is SignIn.WRONG  # nobody signed in: nobody signs
    assert sign("wrong password one") is SignIn.WRONG
    assert sign("wrong password two") is SignIn.LOCKED
    assert sign(PASSWORD) is SignIn.LOCKED  # the right one is refused while locked
    with web_engine.connect() as conn:
        assert sessions.lookup(conn, signed.token) is None  # the lock ended the session
    actions = [r["action"] for r in rows(web_engine, audit, audit.c.actor == KARI)]
    assert actions.count("user.signature") == 1
    assert actions.count("user.signature_failed") == 1 and "user.locked" in actions


def test_a_refused_signature_says_why(web_engine: Engine, seeded: Seeded) -> None:
    from fastapi import Request

    from gateway.store.signin import Attempt

    web = WebContext(make_config(), web_engine, None)
    request = Request({"type": "http", "query_string": b"", "headers": []})
    locked = Attempt(SignIn.LOCKED, KARI, datetime(2026, 7, 1, 10, 0, tzinfo=UTC))
    assert refusal_text(web, request, locked) == (
        "Signaturen ble ikke godtatt: Kontoen er sperret til 01.07.2026 12:00:00 "
        "(Europe/Oslo) etter for mange feil passord på rad."
    )
    assert refusal_text(web, request, Attempt(SignIn.OK, KARI)) == ""
    wrong = refusal_text(web, request, Attempt(SignIn.WRONG, KARI))
    assert wrong == "Signaturen ble ikke godtatt: Feil bruker-ID eller passord."


# --- require() and the form reader -----------------------------------------------------------


def test_require_narrows_a_handler_to_roles() -> None:
    from fastapi import Request

    from gateway.web.auth import Refused, require

    def request_of(viewer: Viewer) -> Request:
        request = Request({"type": "http", "query_string": b"", "headers": []})
        request.state.viewer = viewer  # what the guard left for the handler
        return request

    operator = Viewer("op", "Op", frozenset({Role.OPERATOR}), True, "c", 1)
    assert asyncio.run(require(Role.OPERATOR, Role.VERIFIER)(request_of(operator))) is operator
    assert asyncio.run(require()(request_of(operator))) is operator
    with pytest.raises(Refused) as refused:
        asyncio.run(require(Role.VERIFIER)(request_of(operator)))
    assert refused.value.why == "role"


def test_an_oversized_form_is_refused_before_it_is_read(client: TestClient) -> None:
    token = form_csrf(client)
    response = client.post(
        "/signin", data={"csrf": token, "person": KARI, "password": "x" * 70_000}
    )
    assert response.status_code == 413
    assert not session_cookie(client)
