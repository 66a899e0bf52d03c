"""No decode error ever carries the patient's name or national ID (issue 9 item 5).

Every HL7 and ASTM message of the shared corpus gets a patient (PID, NK1 and PV1 / a P record)
with a name and a valid national ID, and is decoded by every driver as it is and corrupted at
random (bytes replaced, dropped or inserted, mostly in and around the patient segment). Whatever
the error, its text (what quarantine stores, the audit row repeats and the screens show) names
the segment and field; it never quotes the name or the number, not even part of them.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.corpus import corpus_dir
from drivers.errors import RemoteProtocolError
from drivers.protocols.astm.records import parse_message
from drivers.protocols.hl7.orders import parse_orders
from drivers.registry import DRIVERS
from tests.protocols.test_astm_corpus import FRAMED, PLAIN, plain_text, run_link, wire, with_enq

NOW = datetime(2026, 11, 21, 9, 30, tzinfo=UTC)
FNR = "15037212382"  # a valid fødselsnummer
FAMILY, GIVEN, NEXT_OF_KIN = "Nordmann", "Ingeborg", "Kristoffersen"
HL7_CORPUS = corpus_dir("hl7")
ASTM_CORPUS = corpus_dir("astm")
pytestmark = pytest.mark.corpus(HL7_CORPUS, ASTM_CORPUS)

# any 5 letters of a name or 7 digits of the number in an error is a leak
_SECRETS = [
    word[i : i + 5] for word in (FAMILY, GIVEN, NEXT_OF_KIN) for i in range(len(word) - 4)
] + [FNR[i : i + 7] for i in range(len(FNR) - 6)]


def leaked(text: str) -> list[str]:
    return [secret for secret in _SECRETS if secret in text]


# --- the messages -------------------------------------------------------------------------------


def _hl7_messages() -> list[tuple[str, bytes, tuple[int, int]]]:
    """(name, message with our patient, (start, end) of the patient segments in it)."""
    found = []
    for path in sorted(HL7_CORPUS.glob("*.hl7")):
        text = path.read_bytes().decode("latin-1")
        lines = [line for line in re.split(r"\r\n|\r|\n", text) if line and line[0] != "#"]
        messages: list[list[str]] = []
        for line in lines:
            if line.startswith("MSH") or not messages:
                messages.append([])
            messages[-1].append(line)
        for n, segments in enumerate(messages):
            msh = segments[0]
            if not msh.startswith("MSH") or len(msh) < 5:
                continue
            fs, cs = msh[3], msh[4]
            patient = [
                fs.join(
                    [
                        "PID",
                        "1",
                        "",
                        f"{FNR}{cs * 3}NO-FNR",
                        "",
                        f"{FAMILY}{cs}{GIVEN}",
                        "",
                        "19720315",
                        "F",
                    ]
                ),
                fs.join(["NK1", "1", f"{NEXT_OF_KIN}{cs}Ola", "SPO"]),
                fs.join(["PV1", "1", "O", f"{FAMILY}{cs}{GIVEN}"]),
            ]
            rest = [s for s in segments[1:] if s[:3] not in ("PID", "NK1", "PV1", "PD1")]
            head = (msh + "\r").encode("latin-1")
            body = "\r".join(patient).encode("latin-1")
            raw = head + body + b"\r" + "\r".join(rest).encode("latin-1") + b"\r"
            found.append((f"{path.name}#{n}", raw, (len(head), len(head) + len(body))))
    return found


def _astm_record_texts() -> list[tuple[str, str]]:
    texts = [(plain.name, plain_text(plain.name).decode("latin-1")) for plain in PLAIN]
    for framed in FRAMED:
        run = run_link([with_enq(wire(framed.name))], lenient=True)
        texts.append((framed.name, b"".join(run.messages).decode("latin-1")))
    return texts


def _astm_messages() -> list[tuple[str, bytes, tuple[int, int]]]:
    found = []
    for name, text in _astm_record_texts():
        records = [r for r in re.split(r"\r\n|\r|\n", text) if r]
        messages: list[list[str]] = []
        for record in records:
            if record.startswith("H") or not messages:
                messages.append([])
            messages[-1].append(record)
        for n, message in enumerate(messages):
            header = message[0]
            if not header.startswith("H") or len(header) < 4:
                continue
            fd, cd = header[1], header[3]
            patient = fd.join(
                ["P", "1", FNR, FNR, FNR, f"{FAMILY}{cd}{GIVEN}", "", "19720315", "F"]
            )
            kept = [r for r in message[1:] if r[:1] != "P"]
            # our patient before the first order (or right after the header)
            at = next((i for i, r in enumerate(kept) if r[:1] in "OQ"), 0)
            head = "\r".join([header, *kept[:at]]) + "\r"
            raw = head + patient + "\r" + "\r".join(kept[at:]) + "\r"
            start = len(head.encode("latin-1"))
            found.append((f"{name}#{n}", raw.encode("latin-1"), (start, start + len(patient))))
    return found


HL7 = _hl7_messages()
ASTM = _astm_messages()
ASTM_DECODERS = [spec.decode for key, spec in sorted(DRIVERS.items()) if key != "hl7_mllp"]


# --- the decoders' error texts ------------------------------------------------------------------


def hl7_errors(raw: bytes) -> list[str]:
    texts = []
    message = DRIVERS["hl7_mllp"].decode("hl7-1", raw, NOW)
    if message.error is not None:
        texts.append(message.error)
    try:
        parse_orders(raw)
    except RemoteProtocolError as exc:
        texts += [str(exc), exc.without_data()]
    return texts


def astm_errors(raw: bytes) -> list[str]:
    texts = []
    for decode in ASTM_DECODERS:
        message = decode("astm-1", raw, NOW)
        if message.error is not None:
            texts.append(message.error)
    for lenient in (False, True):
        try:
            parse_message(raw, lenient=lenient)
        except RemoteProtocolError as exc:
            texts.append(str(exc))
    return texts


def test_the_corpus_gives_messages_of_both_kinds() -> None:
    assert len(HL7) >= 10 and len(ASTM) >= 20


@pytest.mark.parametrize(("name", "raw"), [m[:2] for m in HL7], ids=[m[0] for m in HL7])
def test_hl7_corpus_message_with_a_patient(name: str, raw: bytes) -> None:
    for error in hl7_errors(raw):
        assert leaked(error) == [], (name, error)


@pytest.mark.parametrize(("name", "raw"), [m[:2] for m in ASTM], ids=[m[0] for m in ASTM])
def test_astm_corpus_message_with_a_patient(name: str, raw: bytes) -> None:
    for error in astm_errors(raw):
        assert leaked(error) == [], (name, error)


# --- broken inside the patient segment ---------------------------------------------------------
# (the corpus messages' own errors lie elsewhere: HL7's are MSH-9 of the order parser, most
# ASTM ones another analyser's fields; these errors arise in the patient's segment itself)


def _broken_patients() -> list[tuple[str, bytes, str]]:
    """(id, message whose patient segment is broken, what the error names)."""
    hl7_raw = HL7[0][1]
    astm_raw = next(
        raw for _, raw, _ in ASTM if DRIVERS["astm_generic"].decode("a", raw, NOW).error is None
    )
    return [
        ("hl7-junk-after-PID", hl7_raw.replace(b"\rPID|", b"\rPID\x00|", 1), "PID"),
        ("hl7-name-split", hl7_raw.replace(f"|{FAMILY}^".encode(), b"|Nord\rmann^", 1), "segment"),
        ("astm-junk-after-P", astm_raw.replace(b"\rP|1|", b"\rP\x00|1|", 1), "'P'"),
        ("astm-name-split", astm_raw.replace(f"|{FAMILY}^".encode(), b"|Nord\rmann^", 1), "record"),
    ]


@pytest.mark.parametrize(
    ("raw", "names"), [b[1:] for b in _broken_patients()], ids=[b[0] for b in _broken_patients()]
)
def test_an_error_in_the_patient_segment_names_it_and_quotes_nothing(
    raw: bytes, names: str
) -> None:
    errors = hl7_errors(raw) if raw.startswith(b"MSH") else astm_errors(raw)
    assert any(names in error for error in errors), errors
    for error in errors:
        assert leaked(error) == [], error


# --- corrupted at random ------------------------------------------------------------------------

_NASTY = b"|^~\\&#\r\n\x00\xff\x02\x03\x17 PHL0123456789"


@st.composite
def corrupted(draw: st.DrawFn, messages: list[tuple[str, bytes, tuple[int, int]]]) -> bytes:
    _, raw, (start, end) = draw(st.sampled_from(messages))
    data = bytearray(raw)
    for _ in range(draw(st.integers(1, 4))):
        if not data:
            break
        near_patient = draw(st.booleans())
        low, high = (max(0, start - 2), min(len(data) - 1, end + 1)) if near_patient else (0, 0)
        position = draw(
            st.integers(low, max(low, high)) if near_patient else st.integers(0, len(data) - 1)
        )
        position = min(position, len(data) - 1)
        value = draw(st.sampled_from(_NASTY) | st.integers(0, 255))
        op = draw(st.sampled_from(("replace", "delete", "insert")))
        if op == "replace":
            data[position] = value
        elif op == "delete":
            del data[position]
        else:
            data.insert(position, value)
    return bytes(data)


_SWEEP = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_SWEEP
@given(raw=corrupted(HL7))
def test_corrupted_hl7_errors_never_quote_the_patient(raw: bytes) -> None:
    for error in hl7_errors(raw):
        assert leaked(error) == [], error


@_SWEEP
@given(raw=corrupted(ASTM))
def test_corrupted_astm_errors_never_quote_the_patient(raw: bytes) -> None:
    for error in astm_errors(raw):
        assert leaked(error) == [], error
