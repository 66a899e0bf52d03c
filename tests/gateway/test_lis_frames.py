"""The LIS worker's closed protocol: its frames, its decoder's allow-list, and the two tables."""

from __future__ import annotations

import functools
import os
import pickle
import struct
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, get_args

import pytest
from sqlalchemy import Engine, select

from drivers.model import InboundMessage, Observation
from gateway.config import LisConfig
from gateway.config import TestConfig as MappingConfig
from gateway.ingest import store_message
from gateway.lis import outbox
from gateway.lis.frames import (
    MAX_FRAME,
    TO_CHILD,
    TO_PARENT,
    Done,
    Enqueue,
    Failed,
    Hello,
    HoldUnbuildable,
    MarkSent,
    Ready,
    Settle,
    Status,
    StoreCommand,
    UnknownFrame,
    Wake,
    decode_frame,
    encode_frame,
    read_frame,
)
from gateway.lis.oru import build_oru
from gateway.lis.outbox import CarriedResult, PendingMessage
from gateway.lis.worker import STORE_HANDLERS, command_for
from gateway.rules import RuleContext
from gateway.store.tables import outbox as outbox_table
from gateway.store.tables import results
from gateway.store.writer import Tx, run_in_transaction

NOW = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
LIS = LisConfig(url="tcp://127.0.0.1:2575", batch_size=2)
CONTEXT = RuleContext(tests={("", "CRP"): MappingConfig(code="CRP", nlk="NPU19748")})
PENDING = PendingMessage(7, "C7", "MSH|...", "pending", (1, 2))

TO_CHILD_FRAMES = [
    Hello(1, "sqlite:///x.sqlite3", LIS.model_dump_json(), 20),
    Wake(),
    Done(3, 5),
    Done(4, None),
    Failed(5, "disk full"),
]
TO_PARENT_FRAMES = [
    Ready(1),
    Enqueue(1, (("C1", "MSH|...", (CarriedResult(1, True), CarriedResult(2, False))),)),
    HoldUnbuildable(2, (CarriedResult(3, False),), "OBX-5: no value"),
    MarkSent(3, PENDING),
    Settle(4, PENDING, "AE", "unknown test"),
    Status(True, "", 1, 2, 3, 4),
]


def wire(frame: Any, allowed: frozenset[type]) -> object:
    """``frame`` as the other end reads it from the pipe."""
    data = encode_frame(frame)
    (size,) = struct.unpack(">I", data[:4])
    assert size == len(data) - 4
    return decode_frame(data[4:], allowed)


@pytest.mark.parametrize("frame", TO_CHILD_FRAMES + TO_PARENT_FRAMES, ids=repr)
def test_every_frame_crosses_the_pipe_unchanged(frame: Any) -> None:
    allowed = TO_CHILD if type(frame) in TO_CHILD else TO_PARENT
    back = wire(frame, allowed)
    assert back == frame
    assert type(back) is type(frame)


class _RunsCode:
    """Unpickling this with a plain ``pickle.loads`` would call ``os.system``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_that_would_run_code_is_refused_without_running_it(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    for payload in (
        pickle.dumps(_RunsCode(marker)),
        pickle.dumps(functools.partial(os.system, f"touch {marker}")),
        pickle.dumps(Done(1, _RunsCode(marker))),
    ):
        with pytest.raises(UnknownFrame, match="not part of the worker protocol"):
            decode_frame(payload, TO_PARENT | TO_CHILD)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("frame", "allowed"),
    [
        (Hello(1, "", "", 0), TO_PARENT),  # the parent's frame coming from the child
        (Enqueue(1, ()), TO_CHILD),  # a command sent to the child
        (PENDING, TO_PARENT),  # a known class, but not a frame
        ((1, 2), TO_PARENT),  # plain values are not frames either
    ],
    ids=repr,
)
def test_a_frame_not_for_this_side_is_refused(frame: Any, allowed: frozenset[type]) -> None:
    with pytest.raises(UnknownFrame, match="not a frame this side accepts"):
        wire(frame, allowed)


@pytest.mark.parametrize("payload", [b"", b"garbage", b"\x80\x05N", pickle.dumps(Wake())[:-3]])
def test_bytes_that_are_no_pickle_are_an_unknown_frame(payload: bytes) -> None:
    with pytest.raises(UnknownFrame):
        decode_frame(payload, TO_PARENT | TO_CHILD)


def test_an_oversized_frame_is_refused_before_it_is_read(tmp_path: Path) -> None:
    stream = tmp_path / "stream"
    stream.write_bytes(struct.pack(">I", MAX_FRAME + 1))
    with stream.open("rb") as reading, pytest.raises(UnknownFrame, match="bytes is not one"):
        read_frame(reading, TO_PARENT)


def test_read_frame_reads_frames_in_order_then_end_of_stream(tmp_path: Path) -> None:
    stream = tmp_path / "stream"
    stream.write_bytes(b"".join(encode_frame(f) for f in TO_PARENT_FRAMES))
    with stream.open("rb") as reading:
        assert [read_frame(reading, TO_PARENT) for _ in TO_PARENT_FRAMES] == TO_PARENT_FRAMES
        assert read_frame(reading, TO_PARENT) is None


def test_the_parent_has_one_handler_per_store_command_and_no_more() -> None:
    assert set(STORE_HANDLERS) == set(get_args(StoreCommand))


def test_only_outbox_store_jobs_become_commands() -> None:
    command = command_for(functools.partial(outbox.settle, pending=PENDING, code="AA", text=""), 9)
    assert command == Settle(9, PENDING._replace(message=""), "AA", "")  # the text stays here
    for job in (
        lambda tx: None,
        functools.partial(os.system, "true"),
        functools.partial(outbox.pending_messages, limit=5),  # a read, not a command
        functools.partial(outbox.settle, PENDING, "AA", ""),  # positional: not how we send
    ):
        with pytest.raises(TypeError, match="not an outbox store job"):
            command_for(job, 1)


def _fill(engine: Engine, n: int) -> None:
    for i in range(n):
        obs = Observation(
            "i1", "CRP", str(i), performed_at=NOW, specimen_id=f"S{i}", patient_id="01010012356"
        )
        message = InboundMessage("i1", "t", f"m{i}".encode(), NOW, observations=(obs,))
        run_in_transaction(engine, lambda tx, m=message: store_message(tx, m, CONTEXT))


def _through_the_pipe(engine: Engine, job: Any, number: int) -> Any:
    """What the worker does with a forwarder's store job: command, pipe, table, writer."""
    command = wire(command_for(job, number), TO_PARENT)
    handler = STORE_HANDLERS[type(command)]
    return run_in_transaction(engine, lambda tx: handler(tx, command), NOW)


def test_each_command_runs_its_outbox_function_in_the_parent(engine: Engine) -> None:
    _fill(engine, 4)
    with engine.connect() as conn:
        queued = outbox.unassigned_queued(Tx(conn, NOW), 10)
    sendable, unbuildable = queued[:2], queued[2:]
    text = build_oru(sendable, control_id="C1", now=NOW, lis=LIS)
    built = [("C1", text, outbox.lean(sendable))]
    assert _through_the_pipe(engine, functools.partial(outbox.enqueue, built=built), 1) == 1
    hold = functools.partial(
        outbox.hold_unbuildable, batch=outbox.lean(unbuildable), error="OBX-5: broken"
    )
    assert _through_the_pipe(engine, hold, 2) is None
    with engine.connect() as conn:
        [pending] = outbox.pending_messages(Tx(conn, NOW), 10)
    _through_the_pipe(engine, functools.partial(outbox.mark_sent, pending=pending), 3)
    settle = functools.partial(outbox.settle, pending=pending, code="AA", text="")
    _through_the_pipe(engine, settle, 4)
    with engine.connect() as conn:
        states = dict(conn.execute(select(results.c.id, results.c.state)).all())
        message = conn.execute(select(outbox_table.c.control_id, outbox_table.c.state)).one()
    assert states == {
        sendable[0].result_id: "acknowledged",
        sendable[1].result_id: "acknowledged",
        unbuildable[0].result_id: "held",
        unbuildable[1].result_id: "held",
    }
    assert tuple(message) == ("C1", "acknowledged")
