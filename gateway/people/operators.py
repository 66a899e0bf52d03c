"""The IDs a person types or scans on instruments: ``BH`` (every instrument) or ``BH@afinion-1``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, order=True)
class OperatorId:
    """An ID a person types or scans; ``instrument_id`` "" means on every instrument."""

    operator_id: str
    instrument_id: str = ""

    def __str__(self) -> str:
        return (
            f"{self.operator_id}@{self.instrument_id}" if self.instrument_id else self.operator_id
        )


def parse_operator_id(text: str) -> OperatorId:
    """``BH`` (any instrument) or ``BH@afinion-1``; ValueError when empty."""
    operator, _, instrument = text.strip().partition("@")
    if not operator.strip():
        raise ValueError(f"operator ID {text!r} is empty")
    return OperatorId(operator.strip(), instrument.strip())
