"""The simulators' pty pair carries bytes both ways to the gateway's own serial transport."""

from __future__ import annotations

import asyncio

from drivers.transports import connector_for
from simulators.pty import PtyPair


async def test_bytes_cross_a_pty_pair_both_ways_and_survive_a_reopen() -> None:
    with PtyPair() as pair:
        master = pair.master_stream()
        every_byte = bytes(range(256))
        for _ in range(2):  # the gateway closes and reopens the port: the pair stays usable
            connector = connector_for(pair.url(9600))
            port = await connector.connect()
            await master.write(every_byte)
            got = b""
            while len(got) < len(every_byte):
                got += await asyncio.wait_for(port.read(), 5)
            assert got == every_byte  # raw: no echo, no CR/LF translation
            await port.write(b"\x06\r\n\x04")
            back = b""
            while len(back) < 4:
                back += await asyncio.wait_for(master.read(), 5)
            assert back == b"\x06\r\n\x04"
            await port.aclose()
            await connector.aclose()
        await master.aclose()
