"""Shared helpers for the ASTM analyser profile tests: corpus reading, round trips, fuzzing."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.corpus import corpus_dir
from drivers.analysers.astm_base import AstmProfile
from drivers.model import Observation
from drivers.protocols.astm.frames import FrameAssembler, encode_frames
from drivers.protocols.astm.records import (
    DEFAULT_DELIMITERS,
    RECORD_TYPES,
    Delimiters,
    Record,
    encode_message,
    parse_message,
)
from gateway.errors import RemoteProtocolError
from simulators.astm_models import SimSample, model_for

CORPUS = corpus_dir("astm")
needs_corpus_dir = pytest.mark.corpus(CORPUS)
NOW = datetime(2025, 3, 4, 10, 0, tzinfo=UTC)
SUMMER = datetime(2025, 7, 1, 6, 30, tzinfo=UTC)
FNR = "15076500565"  # a valid-format national ID used only as test data


def needs_file(path: Path) -> pytest.MarkDecorator:
    """The test needs this corpus file (skipped without it; under CI, failed)."""
    return pytest.mark.corpus(path)


def corpus_frame(path: Path) -> bytes:
    """A stored single-frame capture, from its STX on (any note before it dropped)."""
    raw = path.read_bytes()
    return raw[raw.index(b"\x02") :]


def corpus_records(profile: AstmProfile, path: Path) -> list[Record]:
    """The records of a single-frame capture, unframed and parsed as ``profile`` reads them."""
    text = FrameAssembler(lenient=profile.lenient).feed(corpus_frame(path))
    assert text is not None
    return parse_message(text, lenient=profile.lenient, encoding=profile.encoding)


def with_component(record: Record, number: int, text: str, component: int = 0) -> Record:
    """``record`` with one component of field ``number`` (standard numbering) set to ``text``."""
    fields = list(record.fields)
    while len(fields) < number - 1:
        fields.append((("",),))
    field = fields[number - 2] or (("",),)
    repeat = list(field[0])
    repeat += [""] * (component + 1 - len(repeat))
    repeat[component] = text
    fields[number - 2] = (tuple(repeat), *field[1:])
    return Record(record.type, tuple(fields))


def with_text(
    records: Sequence[Record], index: int, number: int, text: str, component: int = 0
) -> list[Record]:
    """A copy of ``records`` with one component of one record's field set to ``text``."""
    changed = list(records)
    changed[index] = with_component(changed[index], number, text, component)
    return changed


def with_field(
    records: Sequence[Record], index: int, number: int, repeats: list[list[str]]
) -> list[Record]:
    """A copy of ``records`` with field ``number`` of one record (``index`` wraps) replaced."""
    changed = list(records)
    target = changed[index % len(changed)]
    fields = list(target.fields) + [(("",),)] * max(0, number - 1 - len(target.fields))
    fields[number - 2] = tuple(tuple(rep) for rep in repeats)
    changed[index % len(changed)] = Record(target.type, tuple(fields))
    return changed


def round_trip(
    profile: AstmProfile,
    instrument_id: str,
    sample: SimSample,
    delimiters: Delimiters = DEFAULT_DELIMITERS,
) -> list[Observation]:
    """Sample -> records -> bytes -> E1381 frames -> bytes -> records -> observations."""
    message = encode_message(
        model_for(profile).message(sample, delimiters), delimiters, encoding=profile.encoding
    )
    assembler = FrameAssembler(lenient=profile.lenient)
    texts = [assembler.feed(frame) for frame in encode_frames(message)]
    assert texts[-1] == message
    records = parse_message(texts[-1], lenient=profile.lenient, encoding=profile.encoding)
    return list(profile.observations(instrument_id, records))


def by_code(observations: tuple[Observation, ...]) -> dict[str, Observation]:
    """Observations by test code; a code twice fails the test."""
    codes = [o.test_code for o in observations]
    assert len(codes) == len(set(codes)), f"duplicate test codes: {codes}"
    return {o.test_code: o for o in observations}


def assert_refused(
    profile: AstmProfile, records: Sequence[Record], field: str, offending: bytes | None
) -> RemoteProtocolError:
    """The records are refused naming ``field``, with ``offending`` (when given) as the data."""
    with pytest.raises(RemoteProtocolError) as caught:
        profile.observations("i", records)
    assert caught.value.field == field
    if offending is not None:
        assert caught.value.data == offending
    return caught.value


def assert_refused_quietly(
    profile: AstmProfile, records: Sequence[Record], field: str, text: str
) -> None:
    """Refused naming ``field``, with ``text`` as the data and never in what may be logged."""
    error = assert_refused(profile, records, field, text.encode("latin-1"))
    if len(text) >= 4:  # shorter texts can occur in the message by chance
        assert text not in error.without_data()


def maps_or_is_refused(
    profile: AstmProfile,
    records: Sequence[Record],
    check: Callable[[tuple[Observation, ...]], None] | None = None,
) -> None:
    """Map the records; a ``RemoteProtocolError`` naming a field is the only failure allowed."""
    try:
        found = profile.observations("i", records)
    except RemoteProtocolError as exc:
        assert exc.field
        return
    assert all(isinstance(o, Observation) for o in found)
    if check is not None:
        check(found)


def maps_or_is_refused_text(profiles: Sequence[AstmProfile], text: str) -> None:
    """Parse and map any message text; only ``RemoteProtocolError`` may come out."""
    with contextlib.suppress(RemoteProtocolError):
        records = parse_message(text, lenient=True)
        for profile in profiles:
            profile.observations("i", records)


_components = st.tuples(st.text(max_size=8), st.text(max_size=8))
_fields = st.lists(st.lists(_components, min_size=1, max_size=2).map(tuple), max_size=15)
_any_record = st.builds(Record, st.sampled_from(sorted(RECORD_TYPES)), _fields.map(tuple))
_header = st.builds(lambda rest: Record("H", ((("\\^&",),), *rest)), _fields)
#: mostly a header and then anything, sometimes no header at all
any_records = st.one_of(
    st.builds(lambda h, rest: [h, *rest], _header, st.lists(_any_record, max_size=6)),
    st.lists(_any_record, max_size=4),
)
#: the repeats of one field, each a list of components
field_text = st.lists(
    st.lists(st.text(max_size=20), min_size=1, max_size=6), min_size=1, max_size=3
)


# ---------------------------------------------------------------------------------------------
# Fuzz tests, built per profile (assign the result to a ``test_...`` name in the test module)
# ---------------------------------------------------------------------------------------------

Check = Callable[[tuple[Observation, ...]], None]


def fuzz_any_text(
    profile: AstmProfile, base: Sequence[Record], components: int, check: Check | None = None
) -> Callable[..., None]:
    """Any text in any component of any field of ``base`` maps or is refused."""

    @settings(max_examples=300, deadline=None)
    @given(
        index=st.integers(0, len(base) - 1),
        number=st.integers(2, 30),
        component=st.integers(0, components - 1),
        text=st.text(max_size=30),
    )
    def test(index: int, number: int, component: int, text: str) -> None:
        maps_or_is_refused(profile, with_text(base, index, number, text, component), check)

    return test


def fuzz_any_records(profile: AstmProfile, check: Check | None = None) -> Callable[..., None]:
    """Any sequence of records, mostly after a header, maps or is refused."""

    @settings(max_examples=100, deadline=None)
    @given(any_records)
    def test(records: list[Record]) -> None:
        maps_or_is_refused(profile, records, check)

    return test


def fuzz_field_repeats(profile: AstmProfile, seed: int) -> Callable[..., None]:
    """Any repeats and components in any field of a simulated patient or QC message."""
    base = {
        qc: model_for(profile).message(
            model_for(profile).sample(
                random.Random(seed), operator_id="A", qc=qc, patient_id=FNR, now=NOW
            )
        )
        for qc in (False, True)
    }

    @settings(max_examples=300, deadline=None)
    @given(
        qc=st.booleans(), index=st.integers(0, 40), number=st.integers(2, 16), repeats=field_text
    )
    def test(qc: bool, index: int, number: int, repeats: list[list[str]]) -> None:
        maps_or_is_refused(profile, with_field(base[qc], index, number, repeats))

    return test


def fuzz_message_text(profiles: Sequence[AstmProfile], alphabet: str) -> Callable[..., None]:
    """Any message text over ``alphabet`` parses and maps, or is refused."""

    @settings(max_examples=200, deadline=None)
    @given(st.text(alphabet=st.sampled_from(alphabet), max_size=300))
    def test(text: str) -> None:
        maps_or_is_refused_text(profiles, text)

    return test
