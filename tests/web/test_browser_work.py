"""The people rules end to end in real headless Debian Chromium: a running gateway (its own web
server, HL7 analysers over TCP, the LIS forwarder) and the LIS simulator, with people signing in
through the sign-in page and signing their actions with their password.

One gateway serves the module (a GP office with a visually read urine strip and an Afinion);
each test sends its own results with its own specimen IDs. What the LIS got is read from the
simulator's record file (every message with its ACK code). The bokmål screenshots of the
verification queue and of a held result with its action form go to docs/screenshots/ with
TRYGG_SCREENSHOTS=1 (see tests/web/conftest.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright
from sqlalchemy import Engine, select

from drivers.protocols.hl7.message import format_ts
from gateway import catalogue
from gateway.app import Gateway
from gateway.config import Config, parse_config
from gateway.manual import ManualEntry, entry_job
from gateway.rules import context_from_config
from gateway.store.engine import make_engine, upgrade
from gateway.store.tables import results
from gateway.store.writer import run_in_transaction
from simulators.lis import LisSimOptions, LisSimulator
from simulators.national_id import corrupt_fnr, make_fnr
from tests.ports import free_port
from tests.web.conftest import SCREENSHOTS
from tests.web.test_browser import (
    CHROMIUM_ARGS,
    VIEWPORT,
    chromium_path,
    sign_in_with_the_form,
)
from tests.web.work_site import PASSWORD, prepare_store, site_data

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]


#: how long a result may take from an action to the LIS's ACK (forwarder poll 1 s)
LIS_WAIT_S = 20.0
#: OBX-3's text, as the analysers send it
NAMES = {"UGLU": "U-Glukose", "ULEU": "U-Leukocytter", "HBA1C": "HbA1c", "CRP": "CRP"}
_RNG = random.Random(20261207)
_PATIENTS = [make_fnr(_RNG) for _ in range(12)]


def nb(key: str, **params: object) -> str:
    return catalogue.text("nb", key, **params)


@dataclass
class Running:
    url: str
    config: Config
    engine: Engine
    record: Path
    ports: dict[str, int]
    _control: list[int]

    # --- what an analyser does ------------------------------------------------------------
    def send(
        self,
        instrument: str,
        observations: list[tuple[str, str, str]],
        *,
        operator: str,
        specimen: str,
        patient: str,
    ) -> int:
        """One ORU^R01 from ``instrument`` (observations: code, value type, value) over MLLP;
        waits for the gateway's AA and returns the first new result's id."""
        self._control[0] += 1
        stamp = format_ts(datetime.now(UTC))
        segments = [
            f"MSH|^~\\&|{instrument}|SN1|TRYGG|LAB|{stamp}||ORU^R01^ORU_R01|"
            f"T{self._control[0]:06d}|P|2.5.1",
            f"PID|1||{patient}^^^^NNNOR",
            f"OBR|1||{specimen}|PANEL^Panel^L|||{stamp}",
        ]
        for index, (code, value_type, value) in enumerate(observations, 1):
            segments.append(
                f"OBX|{index}|{value_type}|{code}^{NAMES.get(code, code)}^L||{value}||||||F|||"
                f"{stamp}||{operator}"
            )
        payload = ("\r".join(segments) + "\r").encode()
        with socket.create_connection(("127.0.0.1", self.ports[instrument]), timeout=10) as s:
            s.sendall(b"\x0b" + payload + b"\x1c\r")
            answer = b""
            while not answer.endswith(b"\x1c\r"):
                chunk = s.recv(4096)
                assert chunk, "the gateway closed the connection without an ACK"
                answer += chunk
        assert b"MSA|AA|" in answer, answer
        found = self.wait(lambda: self.result_ids(specimen), f"results of {specimen}")
        return found[0]

    # --- what the store and the LIS hold ---------------------------------------------------
    def result_ids(self, specimen: str) -> list[int]:
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    select(results.c.id)
                    .where(results.c.specimen_id == specimen)
                    .order_by(results.c.id)
                ).scalars()
            )

    def state(self, result_id: int) -> str:
        with self.engine.connect() as conn:
            found = conn.execute(select(results.c.state).where(results.c.id == result_id))
            return str(found.scalar())

    def lis_got(self) -> list[dict[str, Any]]:
        """Every message the LIS simulator received, with the ACK code it answered."""
        if not self.record.exists():
            return []
        return [json.loads(line) for line in self.record.read_text().splitlines() if line]

    def lis_messages_with(self, specimen: str) -> list[dict[str, Any]]:
        return [m for m in self.lis_got() if f"|{specimen}|" in m["message"]]

    @staticmethod
    def wait(check: Callable[[], Any], what: str, seconds: float = LIS_WAIT_S) -> Any:
        deadline = time.monotonic() + seconds
        while not (found := check()):
            assert time.monotonic() < deadline, f"timed out after {seconds} s waiting for {what}"
            time.sleep(0.1)
        return found

    def acknowledged_by_lis(self, result_id: int, specimen: str) -> list[dict[str, Any]]:
        self.wait(lambda: self.state(result_id) == "acknowledged", f"result {result_id} acked")
        got = self.lis_messages_with(specimen)
        assert got and all(m["ack_code"] == "AA" for m in got), got
        return got


def _site(url: str, web_port: int, lis_port: int, ports: dict[str, int]) -> Config:
    data = site_data(web_port=web_port, lis_port=lis_port)
    data["store"] = {"url": url}
    data["lis"].update(
        {"worker": "inline", "retry_initial_s": 0.05, "retry_max_s": 0.5, "ack_timeout_s": 5}
    )
    for instrument in data["instruments"]:
        instrument["url"] = f"tcp-listen://127.0.0.1:{ports[instrument['id']]}"
    return parse_config(data, "<browser-work>")


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """The gateway (web on a free port) and the LIS simulator, on an event loop of their own
    in a background thread, until the module's tests are done."""
    tmp = tmp_path_factory.mktemp("browser-work")
    url = f"sqlite:///{tmp / 'trygg.sqlite3'}"
    record = tmp / "lis.jsonl"
    web_port = free_port()
    ports = {"afinion-1": free_port(), "urine-1": free_port()}
    loop = asyncio.new_event_loop()
    box: dict[str, Any] = {}
    ready = threading.Event()

    async def main() -> None:
        stop = asyncio.Event()
        box["stop"] = stop
        async with LisSimulator(LisSimOptions("127.0.0.1", 0, record=record)) as lis:
            config = _site(url, web_port, lis.port, ports)
            engine = make_engine(url)
            upgrade(engine)
            prepare_store(engine, config, now=datetime.now(UTC))
            engine.dispose()
            gateway = Gateway(config)
            task = asyncio.create_task(gateway.run())
            waiting = asyncio.create_task(gateway.ready.wait())
            await asyncio.wait({task, waiting}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
            if task.done():
                box["error"] = task.exception()
                ready.set()
                return
            box["config"] = config
            ready.set()
            await stop.wait()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def serve() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(main())
        except BaseException as exc:  # the test thread reports it
            box["error"] = exc
            ready.set()

    thread = threading.Thread(target=serve, name="gateway", daemon=True)
    thread.start()
    assert ready.wait(60), "the gateway did not start within 60 s"
    assert "error" not in box, box.get("error")
    site = f"http://127.0.0.1:{web_port}"
    engine = make_engine(url)
    try:
        yield Running(site, box["config"], engine, record, ports, [0])
    finally:
        loop.call_soon_threadsafe(box["stop"].set)
        thread.join(timeout=30)
        loop.close()
        engine.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's chromium, headless (as tests/web/test_browser.py starts it)."""
    path = chromium_path()
    with sync_playwright() as driver:
        chromium = driver.chromium.launch(executable_path=path, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@contextlib.contextmanager
def signed_in(browser: Browser, running: Running, person: str) -> Iterator[Page]:
    """A browser window signed in as ``person`` through the sign-in page."""
    context = browser.new_context(viewport=VIEWPORT, locale="nb-NO")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(running.url + "/signin")
        sign_in_with_the_form(page, person, PASSWORD)
        expect(page.locator(".who-name")).to_have_attribute("data-person", person)
        yield page
        assert errors == []
    finally:
        context.close()


def urine(running: Running, specimen: str, *, operator: str, glucose: str, leuko: str) -> int:
    """A urine strip read by eye (glucose and leukocytes); the glucose result's id."""
    return running.send(
        "urine-1",
        [("UGLU", "ST", glucose), ("ULEU", "ST", leuko)],
        operator=operator,
        specimen=specimen,
        patient=_PATIENTS[6 + sum(map(ord, specimen)) % 6],
    )


def fill_password(form: Any) -> None:
    form.get_by_label(nb("signature.password")).fill(PASSWORD)


# --- the tests ---------------------------------------------------------------------------------


def test_a_visual_reading_verified_by_a_second_person_reaches_the_lis(
    browser: Browser, running: Running
) -> None:
    # a morning's strips: Bente's (to be verified), Tone's and Siri's, and one of Morten's own
    reading = urine(running, "U-1001", operator="BH", glucose="2+", leuko="neg")
    urine(running, "U-1002", operator="TB", glucose="neg", leuko="1+")
    urine(running, "U-1003", operator="SD", glucose="1+", leuko="neg")
    own = urine(running, "U-1004", operator="ML", glucose="neg", leuko="neg")
    # and an HbA1c Siri typed in from the analyser's printout
    entry = ManualEntry("afinion-1", "HBA1C", "48", _PATIENTS[7], specimen_id="M-1005")
    typed = run_in_transaction(
        running.engine, entry_job(entry, "siri", context_from_config(running.config))
    )
    assert typed.ok and typed.state == "held", typed
    assert running.state(reading) == "held"
    assert running.lis_messages_with("U-1001") == []

    with signed_in(browser, running, "morten") as page:
        expect(page).to_have_url(running.url + "/my-work")  # where a verifier lands
        page.get_by_role("link", name=nb("nav.verify"), exact=True).click()
        expect(page.get_by_role("heading", level=1)).to_have_text(nb("verify.title"))
        row = page.locator(f'tr[data-result-id="{reading}"]')
        expect(row).to_contain_text("Bente Hansen")
        expect(row).to_contain_text("Visuell avlesning")
        own_row = page.locator(f'tr[data-result-id="{own}"]')
        expect(own_row).to_contain_text(nb("permission.refused.own_result"))
        expect(own_row.locator("a.action-link")).to_have_count(0)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=SCREENSHOTS / "verification-queue.png", full_page=True)

        row.get_by_role("link", name=nb("verify.check")).click()
        expect(page).to_have_url(f"{running.url}/results/{reading}#act-verify")
        form = page.locator("#act-verify")
        form.get_by_label(nb("act.field.value_read")).fill("2+")
        form.get_by_label(nb("act.field.comment_optional")).fill("Avlest mot fargekartet")
        fill_password(form)
        form.get_by_role("button", name=nb("act.submit.verify")).click()
        expect(page).to_have_url(f"{running.url}/results/{reading}")
        said = nb("action.done.queued", id=reading, action=nb("action.name.verify"))
        expect(page.locator("#outcome")).to_have_text(said)
        signature = page.locator('li.signature[data-meaning="verify"]')
        expect(signature).to_contain_text("Godkjent av Morten Lie (morten)")
        expect(signature).to_contain_text(f"2+ ({nb('sig.agreed')})")
        got = running.acknowledged_by_lis(reading, "U-1001")
        # the page refreshes itself once it has no form: the LIS's answer shows up
        expect(page.locator(".big-value .badge")).to_have_text(
            nb("state.acknowledged"), timeout=15_000
        )
    (message,) = got
    obx = next(s for s in message["message"].split("\r") if s.startswith("OBX|"))
    assert obx.split("|")[3].startswith("NPU03989^") and obx.split("|")[5] == "2+"
    assert "|BH|visual^" in obx  # the first reader's operator ID and the method


def test_the_performer_cannot_verify_their_own_reading(browser: Browser, running: Running) -> None:
    reading = urine(running, "U-2001", operator="BH", glucose="1+", leuko="neg")
    with signed_in(browser, running, "bente") as page:
        page.goto(running.url + "/verify")
        row = page.locator(f'tr[data-result-id="{reading}"]')
        expect(row).to_contain_text(nb("permission.refused.own_result"))
        expect(row.locator("a.action-link")).to_have_count(0)
        row.get_by_role("link", name=str(reading), exact=True).click()
        expect(page.locator("#act-verify")).to_have_count(0)
        cannot = nb("work.cannot", action=nb("action.name.verify"))
        refusal = page.locator('.refusal[data-action="verify"]')
        expect(refusal).to_have_text(f"{cannot} {nb('permission.refused.own_result')}")
        # a form sent anyway (an old page, a crafted request) is refused by the server too
        csrf = page.locator('input[name="csrf"]').first.get_attribute("value")
        answer = page.request.post(
            f"{running.url}/results/{reading}/verify",
            form={"csrf": csrf or "", "password": PASSWORD, "value_read": "1+", "comment": ""},
            max_redirects=0,
        )
        assert answer.status == 409
        same = nb("action.refused.same_person", person="bente", action=nb("action.name.verify"))
        assert same in answer.text()
        page.reload()
        expect(page.locator(".big-value .badge")).to_have_text(nb("state.held"))
        expect(page.locator("li.signature")).to_have_count(0)
    assert running.state(reading) == "held"


def test_a_manual_entry_rejected_by_the_verifier_becomes_a_deviation(
    browser: Browser, running: Running
) -> None:
    with signed_in(browser, running, "siri") as page:
        page.get_by_role("link", name=nb("nav.entry"), exact=True).click()
        expect(page.get_by_role("heading", level=1)).to_have_text(nb("entry.title"))
        page.get_by_label(nb("entry.choice")).select_option("afinion-1|HBA1C")
        page.get_by_label(nb("entry.value")).fill("5,2")  # a percentage, not mmol/mol
        page.get_by_label(nb("entry.patient_id")).fill(_PATIENTS[0])
        page.get_by_label(nb("col.specimen")).fill("M-3001")
        page.get_by_role("button", name=nb("entry.submit")).click()
        error = page.locator("label", has=page.locator('input[name="value"]'))
        expect(error.locator(".field-error")).to_have_text(nb("manual.error.too_low", low="20"))
        expect(page.get_by_label(nb("col.specimen"))).to_have_value("M-3001")  # kept as typed
        page.get_by_label(nb("entry.value")).fill("52")
        page.get_by_label(nb("entry.comment")).fill("Analysatoren sendte ikke svaret")
        page.get_by_role("button", name=nb("entry.submit")).click()
        expect(page.locator("#outcome")).to_contain_text("Registrert som svar nr.")
        expect(page.locator(".big-value .badge")).to_have_text(nb("state.held"))
        expect(page.locator(".open-hold")).to_contain_text(nb("reason.awaiting_verification"))
        entered = int(page.url.rsplit("/", 1)[1])

    with signed_in(browser, running, "morten") as page:
        page.goto(f"{running.url}/results/{entered}")
        form = page.locator("#act-reject")
        form.get_by_label(nb("act.field.comment")).fill("Feil prøve: utskriften gjelder en annen")
        fill_password(form)
        form.get_by_role("button", name=nb("act.submit.reject")).click()
        expect(page.locator("#outcome")).to_contain_text("forkastet og sendes aldri")
        expect(page.locator(".big-value .badge")).to_have_text(nb("state.discarded"))
        page.get_by_role("link", name=nb("nav.deviations"), exact=True).click()
        row = page.locator('tr[data-kind="verification_rejected"]').filter(
            has=page.locator(f'a[href="/results/{entered}"]')
        )
        expect(row).to_have_count(1)
        expect(row).to_contain_text(nb("kind.verification_rejected"))
        expect(row).to_contain_text("Kvalitetsansvarlig")
    assert running.lis_messages_with("M-3001") == []


def test_a_trainees_result_is_cosigned_and_the_supervisors_session_shown(
    browser: Browser, running: Running
) -> None:
    with signed_in(browser, running, "siri") as page:
        time.sleep(1.1)  # the trainee's result is stamped to the second, after the sign-in
        result = running.send(
            "afinion-1",
            [("HBA1C", "NM", "49")],
            operator="TB",
            specimen="T-4001",
            patient=_PATIENTS[1],
        )
        assert running.state(result) == "held"
        page.get_by_role("link", name=nb("nav.cosign"), exact=True).click()
        row = page.locator(f'tr[data-result-id="{result}"]')
        expect(row).to_contain_text("Tone Berg")
        row.get_by_role("link", name=nb("cosign.check")).click()
        form = page.locator("#act-cosign")
        form.get_by_label(nb("act.field.comment_optional")).fill("Sto ved siden av")
        fill_password(form)
        form.get_by_role("button", name=nb("act.submit.cosign")).click()
        expect(page.locator("#outcome")).to_contain_text(nb("action.note.session"))
        signature = page.locator('li.signature[data-meaning="cosign"]')
        expect(signature).to_contain_text("Kontrasignert av Siri Dahl (siri)")
        expect(signature.locator("dd.session-yes")).to_have_text(nb("sig.session_yes"))
        running.acknowledged_by_lis(result, "T-4001")


def test_an_uncertified_operators_result_is_held_and_never_sent(
    browser: Browser, running: Running
) -> None:
    held = running.send(
        "afinion-1", [("CRP", "NM", "31")], operator="KN", specimen="K-5001", patient=_PATIENTS[2]
    )
    sent = running.send(
        "afinion-1", [("CRP", "NM", "4")], operator="ML", specimen="K-5002", patient=_PATIENTS[3]
    )
    running.acknowledged_by_lis(sent, "K-5002")  # the LIS link works: a certified one went
    assert running.state(held) == "held"
    assert running.lis_messages_with("K-5001") == []

    with signed_in(browser, running, "tone") as page:
        page.get_by_role("link", name=nb("nav.held"), exact=True).click()
        item = page.locator(f'tbody[data-result-id="{held}"]')
        hold = item.locator('.open-hold[data-reason="uncertified_operator"]')
        expect(hold).to_contain_text(nb("reason.uncertified_operator"))
        expect(hold).to_contain_text(nb("hold.todo.uncertified_operator"))
        expect(hold).to_contain_text("KN")  # which operator ID
        expect(hold.locator('[data-action="override"]')).to_have_count(0)
        page.goto(f"{running.url}/results/{held}")
        expect(page.locator("form.action-form")).to_have_count(0)
        expect(page.get_by_role("button", name=nb("act.submit.override"))).to_have_count(0)

    with signed_in(browser, running, "siri") as page:
        page.goto(running.url + "/held")
        hold = page.locator(f'tbody[data-result-id="{held}"] .open-hold')
        hold.locator('a[data-action="override"]').click()
        expect(page).to_have_url(f"{running.url}/results/{held}#act-override")
        form = page.locator("#act-override")
        expect(form.get_by_role("button", name=nb("act.submit.override"))).to_be_visible()
        form.get_by_label(nb("act.field.reason")).fill(
            "Kari kjørte prøven under tilsyn; resertifisering avtalt"
        )
        page.screenshot(path=SCREENSHOTS / "held-result-action.png", full_page=True)
    # nobody signed: still held, still not at the LIS
    time.sleep(1.5)
    assert running.state(held) == "held"
    assert running.lis_messages_with("K-5001") == []


def test_an_invalid_patient_id_is_corrected_and_only_the_new_one_sent(
    browser: Browser, running: Running
) -> None:
    bad = corrupt_fnr(_PATIENTS[4])
    right = _PATIENTS[5]
    result = running.send(
        "afinion-1", [("CRP", "NM", "17")], operator="ML", specimen="P-6001", patient=bad
    )
    assert running.state(result) == "held"
    with signed_in(browser, running, "bente") as page:
        page.goto(running.url + "/held")
        hold = page.locator(f'tbody[data-result-id="{result}"] .open-hold')
        expect(hold).to_contain_text(nb("reason.invalid_patient_id"))
        expect(hold).not_to_contain_text(bad)  # masked
        hold.locator('a[data-action="correct"]').click()
        form = page.locator("#act-correct")
        form.get_by_label(nb("act.field.field")).select_option("patient_id")
        form.get_by_label(nb("act.field.new_value")).fill(right)
        form.get_by_label(nb("act.field.reason")).fill(
            "Feil siffer på etiketten; sjekket rekvisisjonen"
        )
        fill_password(form)
        form.get_by_role("button", name=nb("act.submit.correct")).click()
        expect(page.locator("#outcome")).to_contain_text("satt i kø til LIS")
        corrections = page.locator("table.corrections tbody tr")
        expect(corrections).to_have_count(1)
        expect(corrections).to_contain_text(bad[:6] + "*****")
        expect(corrections).to_contain_text(right[:6] + "*****")
        assert bad not in page.content() and right not in page.content()
    (message,) = running.acknowledged_by_lis(result, "P-6001")
    pid = next(s for s in message["message"].split("\r") if s.startswith("PID|"))
    assert pid.split("|")[3].split("^")[0] == right
    assert all(bad not in m["message"] for m in running.lis_got())
