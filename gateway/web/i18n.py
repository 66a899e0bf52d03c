"""Every visible string of the dashboard in Norwegian bokmål and English, plus time formats."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final
from zoneinfo import ZoneInfo

from gateway.rules import ACTION_TEXT

LANGUAGES: Final = ("nb", "en")
DEFAULT_LANGUAGE: Final = "nb"

# One entry per visible string. Keys are grouped by prefix; "state.*", "reason.*", "method.*",
# "role.*", "outbox_state.*", "quarantine_state.*", "deviation_state.*", "order_state.*",
# "priority.*" and "kind.*" label stored codes (an unknown code is shown as the code itself).
# Placeholders use str.format.
TEXT: Final[Mapping[str, Mapping[str, str]]] = {
    "nb": {
        "app.tagline": "Instrumentgateway",
        "nav.label": "Hovedmeny",
        "nav.dashboard": "Oversikt",
        "nav.results": "Prøvesvar",
        "nav.orders": "Arbeidsliste",
        "nav.outbox": "Utboks",
        "nav.quarantine": "Karantene",
        "nav.deviations": "Avvik",
        "nav.api": "API",
        "lang.label": "Språk",
        "lang.nb": "Norsk",
        "lang.en": "English",
        "refresh.note": "Oppdateres automatisk hvert {seconds}. sekund.",
        "refresh.updated": "Oppdatert {time}",
        "refresh.stale": "Får ikke kontakt med gatewayen. Viser data fra {time}.",
        "footer.timezone": "Tider vises i tidssonen {tz}.",
        "footer.masked": "Fødselsnumre og D-numre vises maskert.",
        "dashboard.title": "Oversikt",
        "instruments.title": "Instrumenter",
        "instruments.none": "Ingen instrumenter er satt opp.",
        "instruments.connected": "Tilkoblet",
        "instruments.disconnected": "Ikke tilkoblet",
        "instruments.messages": "{n} meldinger",
        "counters.title": "Tellere",
        "counters.held_by_reason": "Holdt tilbake, etter årsak",
        "counters.none_held": "Ingen prøvesvar er holdt tilbake.",
        "counter.received": "Mottatt",
        "counter.held": "Holdt tilbake",
        "counter.queued": "I kø til LIS",
        "counter.sent": "Sendt til LIS",
        "counter.acknowledged": "Kvittert av LIS",
        "counter.rejected": "Avvist av LIS",
        "counter.quarantined": "I karantene",
        "counter.deviations": "Avvik",
        "results.recent": "Siste prøvesvar",
        "results.title": "Prøvesvar",
        "results.none": "Ingen prøvesvar.",
        "results.showing": "Viser {n} prøvesvar, nyeste først.",
        "results.view_all": "Vis alle prøvesvar",
        "col.id": "Nr.",
        "col.received": "Mottatt",
        "col.performed": "Analysert",
        "col.instrument": "Instrument",
        "col.connection": "Tilkobling",
        "col.detail": "Detaljer",
        "col.last_message": "Siste melding",
        "col.messages": "Meldinger",
        "col.driver": "Driver",
        "col.test": "Analyse",
        "col.value": "Resultat",
        "col.flags": "Flagg",
        "col.patient": "Pasient",
        "col.specimen": "Prøve-ID",
        "col.operator": "Operatør",
        "col.state": "Status",
        "col.control_id": "Kontroll-ID",
        "col.results": "Svar",
        "col.attempts": "Forsøk",
        "col.created": "Opprettet",
        "col.answered": "Besvart",
        "col.ack": "Svar fra LIS",
        "col.protocol": "Protokoll",
        "col.field": "Felt",
        "col.error": "Feil",
        "col.bytes": "Byte",
        "col.kind": "Type",
        "col.summary": "Sammendrag",
        "col.responsible": "Ansvarlig",
        "col.method": "Metode",
        "col.path": "Adresse",
        "col.description": "Beskrivelse",
        "col.parameters": "Parametre",
        "col.priority": "Prioritet",
        "col.placed": "Bestilt",
        "col.placed_by": "Bestilt av",
        "col.resulted": "Svar mottatt",
        "hold.why": "Hvorfor",
        "hold.todo": "Hva gjør du",
        "hold.role": "Kan frigis av",
        "hold.released": "Frigitt",
        "filter.legend": "Filter",
        "filter.state": "Status",
        "filter.instrument": "Instrument",
        "filter.all": "Alle",
        "filter.limit": "Antall",
        "filter.apply": "Vis",
        "result.title": "Prøvesvar nr. {id}",
        "result.details": "Detaljer",
        "result.holds": "Tilbakeholdelser",
        "result.no_holds": "Ingen tilbakeholdelser.",
        "result.outbox": "Meldinger til LIS",
        "result.not_in_outbox": "Ikke lagt i utboksen ennå.",
        "result.back": "Tilbake til prøvesvar",
        "result.nlk": "NLK-kode",
        "result.name": "Analysenavn",
        "result.unit": "Enhet",
        "result.reference_range": "Referanseområde",
        "result.method": "Metode",
        "result.result_status": "Svarstatus",
        "result.correction_of": "Retter prøvesvar",
        "result.status_F": "Endelig (F)",
        "result.status_C": "Rettet (C)",
        "outbox.title": "Utboks til LIS",
        "outbox.oldest": "Eldste som venter",
        "outbox.nothing_waiting": "Ingen meldinger venter.",
        "outbox.newest": "Utboks: nyeste meldinger til LIS",
        "outbox.messages": "Meldinger, nyeste først",
        "outbox.none": "Utboksen er tom.",
        "outbox.all": "Vis hele utboksen",
        "outbox_state.pending": "Venter",
        "outbox_state.sent": "Sendt, venter på kvittering",
        "outbox_state.acknowledged": "Kvittert",
        "outbox_state.rejected": "Avvist",
        "lis.title": "LIS-forbindelse",
        "lis.connected": "Tilkoblet",
        "lis.disconnected": "Ikke tilkoblet",
        "lis.last_error": "Siste feil",
        "lis.unknown": "Ukjent: gatewayen kjører ikke i denne prosessen.",
        "lis.not_configured": "Ingen LIS er satt opp.",
        "quarantine.title": "Karantene",
        "quarantine.intro": (
            "Meldinger som ikke kunne leses. Rådataene er lagret og kan spilles av på nytt "
            "når feilen er rettet."
        ),
        "quarantine.none": "Ingen meldinger i karantene.",
        "quarantine_state.open": "Åpen",
        "quarantine_state.replayed": "Spilt av på nytt",
        "quarantine_state.discarded": "Forkastet",
        "deviations.title": "Avvik",
        "deviations.intro": (
            "Feil, nesten-uhell og hendelser. Mange meldte avvik er et tegn på god kultur."
        ),
        "deviations.none": "Ingen avvik er registrert.",
        "deviation_state.open": "Åpen",
        "deviation_state.closed": "Lukket",
        "orders.title": "Arbeidsliste",
        "orders.intro": (
            "Bestillinger per prøve og analyse, fra LIS eller lagt inn for hånd. Når en "
            "analysator spør etter en prøve, får den analysene som er åpne her."
        ),
        "orders.showing": "Viser {n} bestillingslinjer, nyeste først.",
        "orders.none_open": "Ingen åpne bestillinger.",
        "orders.none_cancelled": "Ingen kansellerte bestillinger.",
        "orders.none_all": "Ingen bestillinger.",
        "orders.how_to_add": "Bestillinger kommer fra LIS, eller legges inn med",
        "orders.resulted_yes": "Ja",
        "orders.resulted_no": "Nei",
        "order_state.open": "Åpen",
        "order_state.cancelled": "Kansellert",
        "priority.s": "Haster",
        "priority.a": "Snarest",
        "priority.r": "Rutine",
        "kind.lis_rejected": "LIS avviste en melding",
        "kind.lis_message_invalid": "LIS-melding kunne ikke lages",
        "state.received": "Mottatt",
        "state.held": "Holdt tilbake",
        "state.released": "Frigitt",
        "state.queued": "I kø",
        "state.sent": "Sendt",
        "state.acknowledged": "Kvittert",
        "state.rejected": "Avvist",
        "reason.invalid_patient_id": "Ugyldig pasient-ID",
        "reason.missing_patient_id": "Mangler pasient-ID",
        "reason.unmapped_test": "Ukjent analysekode",
        "reason.duplicate": "Mulig duplikat",
        "reason.lis_message_invalid": "LIS-melding kunne ikke lages",
        "method.measured": "Målt",
        "method.visual": "Visuell avlesning",
        "method.manual": "Manuell registrering",
        "role.bioingenior": "Bioingeniør",
        "role.kvalitetsansvarlig": "Kvalitetsansvarlig",
        "role.dataansvarlig": "Dataansvarlig",
        "role.utstyrsansvarlig": "Utstyrsansvarlig",
        "role.faglig_leder": "Faglig leder",
        "role.hms": "HMS-ansvarlig",
        "error.title": "Feil {status}",
        "error.not_found": "Fant ikke siden.",
        "error.result_not_found": "Prøvesvar nr. {id} finnes ikke.",
        "error.bad_request": "Ugyldig forespørsel: sjekk adressen.",
        "error.back": "Til oversikten",
        "docs.title": "API-dokumentasjon",
        "docs.intro": "JSON-API-et under /api. Maskinlesbar beskrivelse (OpenAPI):",
        "docs.required": "påkrevd",
        "never": "Aldri",
        "none": "–",
        "ago.seconds": "for {n} s siden",
        "ago.minutes": "for {n} min siden",
        "ago.hours": "for {n} t siden",
        "ago.days": "for {n} døgn siden",
        "counters.held_overlap": (
            "Et prøvesvar kan holdes tilbake av flere grunner, så summen kan bli større enn "
            "antallet holdt tilbake."
        ),
    },
    "en": {
        "app.tagline": "Instrument gateway",
        "nav.label": "Main menu",
        "nav.dashboard": "Overview",
        "nav.results": "Results",
        "nav.orders": "Worklist",
        "nav.outbox": "Outbox",
        "nav.quarantine": "Quarantine",
        "nav.deviations": "Deviations",
        "nav.api": "API",
        "lang.label": "Language",
        "lang.nb": "Norsk",
        "lang.en": "English",
        "refresh.note": "Refreshes automatically every {seconds} seconds.",
        "refresh.updated": "Updated {time}",
        "refresh.stale": "Cannot reach the gateway. Showing data from {time}.",
        "footer.timezone": "Times are shown in the {tz} time zone.",
        "footer.masked": "National ID numbers are masked.",
        "dashboard.title": "Overview",
        "instruments.title": "Instruments",
        "instruments.none": "No instruments are configured.",
        "instruments.connected": "Connected",
        "instruments.disconnected": "Not connected",
        "instruments.messages": "{n} messages",
        "counters.title": "Counters",
        "counters.held_by_reason": "Held, by reason",
        "counters.none_held": "No results are held.",
        "counter.received": "Received",
        "counter.held": "Held",
        "counter.queued": "Queued for the LIS",
        "counter.sent": "Sent to the LIS",
        "counter.acknowledged": "Acknowledged by the LIS",
        "counter.rejected": "Rejected by the LIS",
        "counter.quarantined": "Quarantined",
        "counter.deviations": "Deviations",
        "results.recent": "Recent results",
        "results.title": "Results",
        "results.none": "No results.",
        "results.showing": "Showing {n} results, newest first.",
        "results.view_all": "View all results",
        "col.id": "No.",
        "col.received": "Received",
        "col.performed": "Performed",
        "col.instrument": "Instrument",
        "col.connection": "Connection",
        "col.detail": "Detail",
        "col.last_message": "Last message",
        "col.messages": "Messages",
        "col.driver": "Driver",
        "col.test": "Test",
        "col.value": "Value",
        "col.flags": "Flags",
        "col.patient": "Patient",
        "col.specimen": "Specimen",
        "col.operator": "Operator",
        "col.state": "State",
        "col.control_id": "Control ID",
        "col.results": "Results",
        "col.attempts": "Attempts",
        "col.created": "Created",
        "col.answered": "Answered",
        "col.ack": "LIS answer",
        "col.protocol": "Protocol",
        "col.field": "Field",
        "col.error": "Error",
        "col.bytes": "Bytes",
        "col.kind": "Kind",
        "col.summary": "Summary",
        "col.responsible": "Responsible",
        "col.method": "Method",
        "col.path": "Path",
        "col.description": "Description",
        "col.parameters": "Parameters",
        "col.priority": "Priority",
        "col.placed": "Placed",
        "col.placed_by": "Placed by",
        "col.resulted": "Result arrived",
        "hold.why": "Why",
        "hold.todo": "What to do",
        "hold.role": "Can be released by",
        "hold.released": "Released",
        "filter.legend": "Filter",
        "filter.state": "State",
        "filter.instrument": "Instrument",
        "filter.all": "All",
        "filter.limit": "Show",
        "filter.apply": "Show",
        "result.title": "Result no. {id}",
        "result.details": "Details",
        "result.holds": "Holds",
        "result.no_holds": "No holds.",
        "result.outbox": "LIS messages",
        "result.not_in_outbox": "Not in the outbox yet.",
        "result.back": "Back to results",
        "result.nlk": "NLK code",
        "result.name": "Test name",
        "result.unit": "Unit",
        "result.reference_range": "Reference range",
        "result.method": "Method",
        "result.result_status": "Result status",
        "result.correction_of": "Corrects result",
        "result.status_F": "Final (F)",
        "result.status_C": "Corrected (C)",
        "outbox.title": "Outbox to the LIS",
        "outbox.oldest": "Oldest waiting",
        "outbox.nothing_waiting": "No messages are waiting.",
        "outbox.newest": "Outbox: newest messages to the LIS",
        "outbox.messages": "Messages, newest first",
        "outbox.none": "The outbox is empty.",
        "outbox.all": "View the whole outbox",
        "outbox_state.pending": "Waiting",
        "outbox_state.sent": "Sent, awaiting ACK",
        "outbox_state.acknowledged": "Acknowledged",
        "outbox_state.rejected": "Rejected",
        "lis.title": "LIS connection",
        "lis.connected": "Connected",
        "lis.disconnected": "Not connected",
        "lis.last_error": "Last error",
        "lis.unknown": "Unknown: the gateway is not running in this process.",
        "lis.not_configured": "No LIS is configured.",
        "quarantine.title": "Quarantine",
        "quarantine.intro": (
            "Messages that could not be read. The raw bytes are stored and can be replayed "
            "once the cause is fixed."
        ),
        "quarantine.none": "No messages in quarantine.",
        "quarantine_state.open": "Open",
        "quarantine_state.replayed": "Replayed",
        "quarantine_state.discarded": "Discarded",
        "deviations.title": "Deviations",
        "deviations.intro": (
            "Errors, near-misses and incidents. Many reports are a sign of a healthy culture."
        ),
        "deviations.none": "No deviations are recorded.",
        "deviation_state.open": "Open",
        "deviation_state.closed": "Closed",
        "orders.title": "Worklist",
        "orders.intro": (
            "Orders per specimen and test, from the LIS or added by hand. An analyser that "
            "asks for a specimen is sent the tests open here."
        ),
        "orders.showing": "Showing {n} order lines, newest first.",
        "orders.none_open": "No open orders.",
        "orders.none_cancelled": "No cancelled orders.",
        "orders.none_all": "No orders.",
        "orders.how_to_add": "Orders come from the LIS, or are added with",
        "orders.resulted_yes": "Yes",
        "orders.resulted_no": "No",
        "order_state.open": "Open",
        "order_state.cancelled": "Cancelled",
        "priority.s": "Stat",
        "priority.a": "ASAP",
        "priority.r": "Routine",
        "kind.lis_rejected": "The LIS rejected a message",
        "kind.lis_message_invalid": "A LIS message could not be built",
        "state.received": "Received",
        "state.held": "Held",
        "state.released": "Released",
        "state.queued": "Queued",
        "state.sent": "Sent",
        "state.acknowledged": "Acknowledged",
        "state.rejected": "Rejected",
        "reason.invalid_patient_id": "Invalid patient ID",
        "reason.missing_patient_id": "Missing patient ID",
        "reason.unmapped_test": "Unmapped test code",
        "reason.duplicate": "Possible duplicate",
        "reason.lis_message_invalid": "LIS message could not be built",
        "method.measured": "Measured",
        "method.visual": "Visual reading",
        "method.manual": "Manual entry",
        "role.bioingenior": "Biomedical laboratory scientist",
        "role.kvalitetsansvarlig": "Quality manager",
        "role.dataansvarlig": "IT owner (Dataansvarlig)",
        "role.utstyrsansvarlig": "Equipment owner",
        "role.faglig_leder": "Medical lead",
        "role.hms": "HSE officer",
        "error.title": "Error {status}",
        "error.not_found": "Page not found.",
        "error.result_not_found": "Result no. {id} does not exist.",
        "error.bad_request": "Bad request: check the address.",
        "error.back": "Back to the overview",
        "docs.title": "API documentation",
        "docs.intro": "The JSON API under /api. Machine-readable description (OpenAPI):",
        "docs.required": "required",
        "never": "Never",
        "none": "–",
        "ago.seconds": "{n} s ago",
        "ago.minutes": "{n} min ago",
        "ago.hours": "{n} h ago",
        "ago.days": "{n} days ago",
        "counters.held_overlap": (
            "A result can be held for more than one reason, so the reasons can add up to more "
            "than the number of held results."
        ),
    },
}

_TIME_FORMAT: Final[Mapping[str, str]] = {"nb": "%d.%m.%Y %H:%M:%S", "en": "%Y-%m-%d %H:%M:%S"}
_CLOCK_FORMAT: Final = "%H:%M:%S"


def choose_language(requested: str | None, cookie: str | None, default: str) -> str:
    """The query's ``lang`` if known, else the cookie's, else the site default."""
    for candidate in (requested, cookie, default):
        if candidate in LANGUAGES:
            return candidate
    return DEFAULT_LANGUAGE


def text(lang: str, key: str, **params: object) -> str:
    """The string for ``key`` in ``lang`` (English, then the key itself, when missing)."""
    template = TEXT.get(lang, {}).get(key) or TEXT["en"].get(key) or key
    return template.format(**params) if params else template


def label(lang: str, group: str, code: str) -> str:
    """A label for a stored code such as a state or a hold reason; unknown codes stay as is."""
    if not code:
        return text(lang, "none")
    key = f"{group}.{code.lower()}"
    return text(lang, key) if key in TEXT.get(lang, {}) else code


def action_text(lang: str, reason: str, stored: str) -> str:
    """What to do about a hold, in ``lang``; falls back to the action stored with the hold."""
    return ACTION_TEXT.get(lang, {}).get(reason) or stored


def parse_time(value: datetime | str | None) -> datetime | None:
    """An aware datetime from a stored value or an ISO string (naive values are UTC)."""
    if value is None or value == "":
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Translator:
    """One request's language and time zone, with the helpers the templates call."""

    lang: str
    zone: ZoneInfo

    def t(self, key: str, **params: object) -> str:
        return text(self.lang, key, **params)

    def label(self, group: str, code: str) -> str:
        return label(self.lang, group, code)

    def action(self, reason: str, stored: str) -> str:
        return action_text(self.lang, reason, stored)

    def when(self, value: datetime | str | None) -> str:
        """Date and time in the site's zone ("never" when missing)."""
        moment = parse_time(value)
        if moment is None:
            return text(self.lang, "never")
        return moment.astimezone(self.zone).strftime(_TIME_FORMAT[self.lang])

    def clock(self, value: datetime) -> str:
        return value.astimezone(self.zone).strftime(_CLOCK_FORMAT)

    def ago(self, value: datetime | str | None, now: datetime) -> str:
        """How long ago, roughly ("for 5 min siden" / "5 min ago")."""
        moment = parse_time(value)
        if moment is None:
            return ""
        seconds = max(0, int((now - moment).total_seconds()))
        if seconds < 60:
            return text(self.lang, "ago.seconds", n=seconds)
        if seconds < 3600:
            return text(self.lang, "ago.minutes", n=seconds // 60)
        if seconds < 86400:
            return text(self.lang, "ago.hours", n=seconds // 3600)
        return text(self.lang, "ago.days", n=seconds // 86400)
