"""The gateway lease on both stores: refused while held, taken over when expired or dead, fenced."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, create_engine, select

from gateway.config import parse_config
from gateway.errors import ConfigError, LeaseHeldError, LeaseLostError
from gateway.store.lease import Lease, process_alive, read_holder
from gateway.store.tables import audit, instruments
from gateway.store.writer import GroupCommitWriter, Tx, run_in_transaction

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def lease(engine: Engine) -> Lease:
    return Lease(engine, ttl_s=30.0, site="lab")


def actions(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(audit.c.action).where(audit.c.entity == "gateway").order_by(audit.c.id)
            ).scalars()
        )


def test_a_second_gateway_is_refused_and_told_who_holds_the_store(engine: Engine) -> None:
    first, second = lease(engine), lease(engine)
    assert first.acquire(T0) is None
    with pytest.raises(LeaseHeldError) as refused:
        second.acquire(T0 + timedelta(seconds=29))
    text = str(refused.value)
    assert f"host {first.host}, process {first.pid}" in text
    # Europe/Oslo is shown: 08:00 UTC is 09:00 CET; the lease lasts until 30 s after it
    assert "running since 2026-11-23 09:00:00 CET" in text
    assert "last heartbeat 2026-11-23 09:00:00 CET" in text
    assert "start this one again after 2026-11-23 09:00:30 CET" in text
    assert "Stop the other gateway first" in text
    with engine.connect() as conn:
        holder = read_holder(conn)
    assert holder is not None and holder.instance_id == first.instance_id
    assert not second.held and actions(engine) == ["gateway.lease_acquired"]


def test_the_heartbeat_keeps_the_lease_and_an_expired_one_is_taken_over(engine: Engine) -> None:
    first, second = lease(engine), lease(engine)
    first.acquire(T0)
    run_in_transaction(engine, first.renew, T0 + timedelta(seconds=25))
    with pytest.raises(LeaseHeldError, match="last heartbeat 2026-11-23 09:00:25 CET"):
        second.acquire(T0 + timedelta(seconds=50))  # 25 s after the renewal: still held
    taken = second.acquire(T0 + timedelta(seconds=56))
    assert taken is not None and taken.instance_id == first.instance_id
    assert taken.heartbeat_at == T0 + timedelta(seconds=25)
    with engine.connect() as conn:
        holder = read_holder(conn)
    assert holder is not None and holder.instance_id == second.instance_id
    assert holder.started_at == T0 + timedelta(seconds=56)
    assert actions(engine) == ["gateway.lease_acquired", "gateway.lease_taken_over"]


def test_the_old_holder_finds_out_and_writes_nothing_more(engine: Engine) -> None:
    first, second = lease(engine), lease(engine)
    told: list[LeaseLostError] = []
    first.on_lost = told.append
    first.acquire(T0)
    writer = GroupCommitWriter(engine, fence=first.fence)
    writer.start()
    try:

        def add(name: str) -> None:
            def job(tx: Tx) -> None:
                tx.conn.execute(
                    instruments.insert().values(
                        id=name, driver="hl7_mllp", url="tcp://127.0.0.1:1", connected=False
                    )
                )

            writer.submit(job).result(10)

        add("before")
        second.acquire(T0 + timedelta(minutes=5))
        with pytest.raises(LeaseLostError) as lost:
            add("after")
        with pytest.raises(LeaseLostError):
            writer.submit(first.renew, urgent=True).result(10)
    finally:
        writer.stop()
    assert f"host {second.host}, process {second.pid}" in str(lost.value)
    assert "stops forwarding and shuts down" in str(lost.value)
    assert told == [first.lost] and first.lost is not None and not first.held
    with engine.connect() as conn:
        names = set(conn.execute(select(instruments.c.id)).scalars())
    assert names == {"before"}
    assert not first.release()  # nothing to give up: the row is the other gateway's
    with engine.connect() as conn:
        holder = read_holder(conn)
    assert holder is not None and holder.instance_id == second.instance_id
    assert holder.released_at is None


def test_a_clean_stop_releases_and_the_next_start_needs_no_wait(engine: Engine) -> None:
    first, second = lease(engine), lease(engine)
    first.acquire(T0)
    assert first.release(T0 + timedelta(seconds=5))
    assert second.acquire(T0 + timedelta(seconds=6)) is None  # released, not taken over
    assert actions(engine) == [
        "gateway.lease_acquired",
        "gateway.lease_released",
        "gateway.lease_acquired",
    ]


def test_a_dead_process_on_this_host_is_taken_over_at_once(engine: Engine) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    assert not process_alive(gone.pid)
    assert process_alive(os.getpid())
    crashed = lease(engine)
    crashed.pid = gone.pid  # as a gateway killed with -9 left its row
    crashed.acquire(T0)
    replacement = lease(engine)
    taken = replacement.acquire(T0 + timedelta(seconds=1))  # long before the expiry
    assert taken is not None and taken.pid == gone.pid
    # but a live process elsewhere is not judged by our process table
    elsewhere = lease(engine)
    elsewhere.host = "another-pc"
    with pytest.raises(LeaseHeldError, match=f"Stop the other gateway on {replacement.host}"):
        elsewhere.acquire(T0 + timedelta(seconds=2))


@pytest.mark.parametrize("before", ["empty store", "expired holder"])
def test_gateways_starting_at_once_cannot_both_win(engine: Engine, before: str) -> None:
    if before == "expired holder":
        lease(engine).acquire(T0 - timedelta(minutes=10))
    contenders = [lease(engine) for _ in range(4)]
    barrier = threading.Barrier(len(contenders))
    won: list[Lease] = []
    refused: list[BaseException] = []

    def start(candidate: Lease) -> None:
        barrier.wait()
        try:
            candidate.acquire(T0)
            won.append(candidate)
        except LeaseHeldError as exc:
            refused.append(exc)

    threads = [threading.Thread(target=start, args=(c,)) for c in contenders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(won) == 1 and len(refused) == len(contenders) - 1
    with engine.connect() as conn:
        holder = read_holder(conn)
    assert holder is not None and holder.instance_id == won[0].instance_id


@pytest.mark.parametrize("ttl", [0.5, 0, -1, 3601, float("nan")])
def test_lease_ttl_out_of_range_is_a_config_error(ttl: float) -> None:
    with pytest.raises(ConfigError, match=r"<t>: store\.lease_ttl_s: must be 1-3600 seconds"):
        parse_config({"site": {"name": "lab"}, "store": {"lease_ttl_s": ttl}}, "<t>")


def test_lease_ttl_defaults_to_30_s_and_the_heartbeat_is_a_third() -> None:
    config = parse_config({"site": {"name": "lab"}, "store": {"lease_ttl_s": 6}}, "<t>")
    assert config.store.lease_ttl_s == 6.0
    assert parse_config({"site": {"name": "lab"}}).store.lease_ttl_s == 30.0
    engine = create_engine("sqlite://")
    assert Lease(engine, ttl_s=6.0, site="lab").heartbeat_s == 2.0
    engine.dispose()
