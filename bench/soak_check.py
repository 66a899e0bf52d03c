"""The soak's verdict: what the analysers were told was received, against what the LIS got.

A result is known by its identity at both ends: (instrument, specimen, the instrument's test
code). The analysers' ledgers give, per instrument and in the order the gateway acknowledged
them, the results they got a positive ACK for; the LIS's record gives every message it
received, in arrival order, with its MSH-10. The checks:

* **missing**: a result an analyser got ACK for that never reached the LIS;
* **duplicates**: a result the LIS received under two or more control IDs (the gateway must
  resend a message under its own MSH-10, so the LIS can drop a repeat by its control ID:
  the same control ID twice is a resend, not a duplicate);
* **changed**: a control ID the LIS received twice with different content;
* **out of order**: per instrument, a result whose first arrival at the LIS came in an
  earlier LIS message than the first arrival of a result the analyser had been ACKed for
  before it. The unit of order is the LIS message: within one ORU^R01 the results are
  grouped by patient and specimen, so OBX order says nothing. The forwarder packs results in
  store order and keeps up to ``[lis] window`` messages in flight on one connection, in
  outbox order, resending the oldest unsettled first: first arrivals must not go backwards.
* **rejected**: messages the LIS answered with anything but AA.

Pure: no I/O beyond parsing the lines it is given.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

#: (instrument id, specimen id, the instrument's test code)
ResultKey = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class Arrival:
    """One message the LIS received (one line of its record)."""

    control_id: str
    ack_code: str | None
    message: str
    results: tuple[ResultKey, ...]


def parse_oru(message: str, local_code: Mapping[str, str]) -> tuple[ResultKey, ...]:
    """The results of one ORU^R01 the gateway built: OBR-3 specimen, OBX-3 code (an NLK code
    mapped back to the instrument's with ``local_code``), the instrument from the OBX-18
    repetition ``id^namespace``."""
    found: list[ResultKey] = []
    specimen = ""
    for segment in message.split("\r"):
        fields = segment.split("|")
        if fields[0] == "OBR":
            specimen = fields[3].split("^")[0] if len(fields) > 3 else ""
        elif fields[0] == "OBX":
            code = fields[3].split("^")[0] if len(fields) > 3 else ""
            equipment = fields[18].split("~") if len(fields) > 18 else []
            instrument = next((r.split("^")[0] for r in equipment if "^" in r), "")
            found.append((instrument, specimen, local_code.get(code, code)))
    return tuple(found)


def read_arrivals(lines: Iterable[str], local_code: Mapping[str, str]) -> tuple[list[Arrival], int]:
    """Arrivals from record lines, and how many lines were torn (the LIS was killed while
    writing one: the message was not ACKed, the gateway sends it again)."""
    arrivals: list[Arrival] = []
    torn = 0
    for line in lines:
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            torn += 1
            continue
        text = str(entry["message"])
        arrivals.append(
            Arrival(
                str(entry["control_id"]),
                entry["ack_code"],
                text,
                parse_oru(text, local_code),
            )
        )
    return arrivals, torn


@dataclass
class Reconciliation:
    acked: int = 0  # results the analysers got a positive ACK for
    acked_at_lis: int = 0  # of those, at the LIS
    lis_messages: int = 0  # messages the LIS received (resends included)
    lis_results: int = 0  # distinct results at the LIS
    not_acked_at_lis: int = 0  # at the LIS, no ACK seen by the analyser (lost in a kill)
    resends: int = 0  # arrivals under a control ID the LIS had received before
    missing: list[ResultKey] = field(default_factory=list)
    duplicates: dict[ResultKey, list[str]] = field(default_factory=dict)
    changed: list[str] = field(default_factory=list)
    out_of_order: list[ResultKey] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    repeated_acks: int = 0  # the same result ACKed twice to an analyser (never expected)

    @property
    def failures(self) -> list[str]:
        """What failed, in words; empty when every check passed."""
        out = []
        if self.missing:
            out.append(f"{len(self.missing)} ACKed result(s) never reached the LIS")
        if self.duplicates:
            out.append(f"{len(self.duplicates)} result(s) reached the LIS under two control IDs")
        if self.changed:
            out.append(f"{len(self.changed)} control ID(s) came twice with different content")
        if self.out_of_order:
            out.append(f"{len(self.out_of_order)} result(s) reached the LIS out of order")
        if self.rejected:
            out.append(f"{len(self.rejected)} message(s) the LIS did not answer AA")
        if self.repeated_acks:
            out.append(f"{self.repeated_acks} result(s) were ACKed to an analyser twice")
        return out


def reconcile(
    acked: Mapping[str, Sequence[ResultKey]], arrivals: Sequence[Arrival]
) -> Reconciliation:
    """Check the LIS's ``arrivals`` (in arrival order) against ``acked``: per instrument, the
    results its analyser got a positive ACK for, in the order the ACKs came."""
    out = Reconciliation(lis_messages=len(arrivals))
    first_arrival: dict[ResultKey, int] = {}
    control_ids: dict[ResultKey, set[str]] = defaultdict(set)
    content: dict[str, str] = {}
    for index, arrival in enumerate(arrivals):
        earlier = content.get(arrival.control_id)
        if earlier is None:
            content[arrival.control_id] = arrival.message
        else:
            out.resends += 1
            if earlier != arrival.message:
                out.changed.append(arrival.control_id)
        if arrival.ack_code not in ("AA", None):
            out.rejected.append(arrival.control_id)
        for key in arrival.results:
            first_arrival.setdefault(key, index)
            control_ids[key].add(arrival.control_id)
    out.duplicates = {k: sorted(v) for k, v in control_ids.items() if len(v) > 1}
    out.lis_results = len(first_arrival)
    acked_keys: set[ResultKey] = set()
    for keys in acked.values():
        latest = -1  # the latest first arrival among the results ACKed before
        for key in keys:
            out.acked += 1
            if key in acked_keys:
                out.repeated_acks += 1
                continue
            acked_keys.add(key)
            position = first_arrival.get(key)
            if position is None:
                out.missing.append(key)
                continue
            out.acked_at_lis += 1
            if position < latest:
                out.out_of_order.append(key)
            latest = max(latest, position)
    out.not_acked_at_lis = len(first_arrival.keys() - acked_keys)
    return out
