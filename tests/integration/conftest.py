"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from gateway.app import Gateway
from gateway.config import Config


@pytest.fixture
def make_gateway() -> Iterator[Callable[[Config], Gateway]]:
    """Build gateways; tests read a gateway's store after it stopped, so their connections
    are closed only at the end."""
    made: list[Gateway] = []

    def make(config: Config) -> Gateway:
        made.append(Gateway(config))
        return made[-1]

    yield make
    for gateway in made:
        gateway.engine.dispose()
