"""The worklist on the web: /orders in both languages and /api/orders, over a real SQLite store."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import Engine

from drivers.model import OrderAction, OrderRequest
from gateway.config import Config
from gateway.orders.store import apply_orders
from gateway.store.writer import run_in_transaction
from gateway.web import i18n
from gateway.web.app import create_app
from tests.web.conftest import LOCAL, OTHER_FNR, SUMMER, T0, VALID_FNR, Seeded, sign_in

with warnings.catch_warnings():
    # Starlette 1.10 prefers httpx2 for its TestClient; httpx (our test extra) still works.
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

MASKED = VALID_FNR[:6] + "*****"
OTHER_MASKED = OTHER_FNR[:6] + "*****"


def place(engine: Engine, request: OrderRequest, actor: str, when: object) -> None:
    run_in_transaction(
        engine,
        lambda tx: apply_orders(tx, [request], actor=actor, reason="test"),
        when,  # type: ignore[arg-type]
    )


@pytest.fixture
def worklist(web_engine: Engine, seeded: Seeded) -> Engine:
    """S1 (CRP has a result in the seeded store) stat from the LIS in January, S8 routine by a
    person in July, S9 placed and cancelled."""
    new = OrderAction.NEW
    place(
        web_engine,
        OrderRequest(new, "S1", ("CRP", "HBA1C"), patient_id=VALID_FNR, priority="S"),
        "lis",
        T0,
    )
    place(web_engine, OrderRequest(new, "S9", ("GLU",)), "kari.bioing", T0 + timedelta(minutes=5))
    place(
        web_engine,
        OrderRequest(OrderAction.CANCEL, "S9", ()),
        "ola",
        T0 + timedelta(minutes=6),
    )
    place(
        web_engine,
        OrderRequest(new, "S8", ("CRP",), patient_id=OTHER_FNR, placer_order="LIS77"),
        "kari.bioing",
        SUMMER,
    )
    return web_engine


@pytest.fixture
def client(web_config: Config, worklist: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(web_config, worklist), base_url=LOCAL) as test_client:
        sign_in(test_client)
        yield test_client


@pytest.fixture
def empty_client(web_config: Config, web_engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(web_config, web_engine), base_url=LOCAL) as test_client:
        sign_in(test_client)
        yield test_client


def visible_text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def empty_text(html: str) -> str:
    """The empty-state paragraph as read, tags dropped (its command sits in <code>)."""
    found = re.search(r'<p class="empty">(.*?)</p>', html, re.S)
    assert found is not None
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", found.group(1))).strip()


def lines(rows: list[dict[str, object]]) -> list[tuple[object, object]]:
    return [(row["specimen_id"], row["test_code"]) for row in rows]


# --- JSON API ------------------------------------------------------------------------------


def test_api_lists_open_lines_newest_first_masked(client: TestClient) -> None:
    response = client.get("/api/orders")
    assert response.status_code == 200
    assert VALID_FNR not in response.text and OTHER_FNR not in response.text
    rows = response.json()
    assert lines(rows) == [("S8", "CRP"), ("S1", "HBA1C"), ("S1", "CRP")]
    assert [r["id"] for r in rows] == sorted((r["id"] for r in rows), reverse=True)
    s8, s1_hba1c, s1_crp = rows
    assert s8["patient"] == OTHER_MASKED and s8["placer_order"] == "LIS77"
    assert s8["priority"] == "R" and s8["placed_by"] == "kari.bioing"
    assert s8["placed_at"] == SUMMER.isoformat()
    assert s1_crp["patient"] == MASKED and s1_crp["priority"] == "S"
    assert s1_crp["placed_by"] == "lis" and s1_crp["state"] == "open"
    # the seeded store holds a CRP result for S1, none for its HbA1c nor for S8
    assert (s1_crp["resulted"], s1_hba1c["resulted"], s8["resulted"]) == (True, False, False)


def test_api_state_filter_and_limit(client: TestClient) -> None:
    (cancelled,) = client.get("/api/orders", params={"state": "cancelled"}).json()
    assert (cancelled["specimen_id"], cancelled["state"]) == ("S9", "cancelled")
    assert cancelled["placed_by"] == "kari.bioing" and cancelled["updated_by"] == "ola"
    every = client.get("/api/orders", params={"state": "all"}).json()
    assert lines(every) == [("S8", "CRP"), ("S9", "GLU"), ("S1", "HBA1C"), ("S1", "CRP")]
    assert lines(client.get("/api/orders", params={"limit": 1}).json()) == [("S8", "CRP")]
    assert client.get("/api/orders", params={"state": "closed"}).status_code == 422
    assert client.get("/api/orders", params={"limit": 0}).status_code == 422


def test_api_orders_is_in_the_openapi_schema(client: TestClient) -> None:
    assert "/api/orders" in client.get("/openapi.json").json()["paths"]


# --- the page ------------------------------------------------------------------------------


def test_orders_page_in_norwegian(client: TestClient) -> None:
    response = client.get("/orders")
    assert response.status_code == 200 and '<html lang="nb">' in response.text
    html = response.text
    text = visible_text(html)
    assert "Arbeidsliste" in text and "Prøve-ID" in text and "Svar mottatt" in text
    assert '<a href="/orders" aria-current="page">Arbeidsliste</a>' in html
    assert MASKED in text and OTHER_MASKED in text
    assert VALID_FNR not in html and OTHER_FNR not in html
    assert "Haster" in text and "Rutine" in text and not re.search(r"\bStat\b", text)
    # placed at, in Europe/Oslo: UTC+1 in January, UTC+2 in July
    assert "15.01.2026 10:30:00" in text and "01.07.2026 12:00:00" in text
    assert "S9" not in text  # cancelled lines are not on the default (open) list
    rows = re.findall(r'<tr data-order-id="\d+">(.*?)</tr>', html, re.S)
    assert len(rows) == 3
    s1_crp = visible_text(rows[2])
    assert "S1" in s1_crp and "CRP" in s1_crp and " Ja " in s1_crp and "lis" in s1_crp
    assert " Nei " in visible_text(rows[1])
    assert "priority-S" in rows[2] and "priority-R" in rows[0]


def test_orders_page_in_english(client: TestClient) -> None:
    text = visible_text(client.get("/orders", params={"lang": "en"}).text)
    assert "Worklist" in text and "Specimen" in text and "Result arrived" in text
    assert "Stat" in text and "Routine" in text and "Haster" not in text
    assert "2026-01-15 10:30:00" in text and "2026-07-01 12:00:00" in text
    assert " Yes " in text and " No " in text


def test_orders_page_state_filter(client: TestClient) -> None:
    html = client.get("/orders", params={"state": "cancelled"}).text
    text = visible_text(html)
    assert "S9" in text and "GLU" in text and "Kansellert" in text and "S8" not in text
    assert '<option value="cancelled" selected>' in html
    every = client.get("/orders", params={"state": "all"}).text
    assert len(re.findall(r'<tr data-order-id="\d+">', every)) == 4
    bad = client.get("/orders", params={"state": "closed"})
    assert bad.status_code == 422 and "Ugyldig forespørsel" in bad.text


def test_orders_page_is_read_only(client: TestClient) -> None:
    html = client.get("/orders").text
    main = html.split("<main>", 1)[1]  # the header's sign-out form is not the page's
    assert 'method="post"' not in main.lower()
    assert client.post("/orders").status_code == 405


def test_empty_worklist_says_what_to_do(empty_client: TestClient) -> None:
    nb = empty_client.get("/orders")
    assert nb.status_code == 200
    assert empty_text(nb.text) == (
        "Ingen åpne bestillinger. Bestillinger kommer fra LIS, eller legges inn med "
        "trygg orders add."
    )
    assert '<code class="mono">trygg orders add</code>' in nb.text
    en = empty_client.get("/orders", params={"lang": "en"}).text
    assert empty_text(en) == (
        "No open orders. Orders come from the LIS, or are added with trygg orders add."
    )
    cancelled = empty_client.get("/orders", params={"state": "cancelled", "lang": "nb"}).text
    assert empty_text(cancelled).startswith("Ingen kansellerte bestillinger.")
    assert empty_client.get("/api/orders").json() == []


@pytest.mark.parametrize("lang", i18n.LANGUAGES)
def test_orders_page_renders_safely(client: TestClient, lang: str) -> None:
    response = client.get("/orders", params={"lang": lang, "state": "all"})
    assert f'<html lang="{lang}">' in response.text
    assert not re.search(r'(?:src|href)="(?:https?:)?//', response.text)
    assert response.headers["cache-control"] == "no-store"
    groups = {key.split(".")[0] for key in i18n.TEXT["en"]}
    leaked = [g for g in groups if re.search(rf">\s*{g}\.[a-z_]+", response.text)]
    assert not leaked


def test_every_page_links_the_worklist(client: TestClient) -> None:
    for path in ("/", "/results", "/quarantine"):
        assert '<a href="/orders">Arbeidsliste</a>' in client.get(path).text
    assert '<a href="/orders">Worklist</a>' in client.get("/", params={"lang": "en"}).text
