"""The generic HL7 v2 profile: which observations of a result message are QC, read on site time.

The HL7 core (``drivers.protocols.hl7.message``) reads the message; this profile is the policy
the generic HL7 receiver (``drivers.analysers.generic_hl7``) gives it:

* timestamps sent without an offset are the analyser's local time (``ANALYSER_TZ``);
* an observation is QC when an SPM of its group has a control specimen role in SPM-11 (HL7
  table 0369: ``Q`` control, ``E`` electronic QC; ``QC`` as some senders write it) or "QC" in
  the role's text;
* and, when it follows no patient, when a word starting with QC, CONTROL or KONTROLL appears in
  its specimen ID or in its order's service or specimen's type text: senders without SPM mark
  controls that way. A result with a patient is never QC by a word (a text may well mention a
  control).
"""

from __future__ import annotations

import re

from drivers.analysers.site import ANALYSER_TZ
from drivers.protocols.hl7.message import ParsedMessage, QcEvidence, parse_observations

_QC_SPECIMEN_ROLES = frozenset({"Q", "E", "QC"})
_QC_WORD = re.compile(r"(?<![A-Z])(?:QC|CONTROL|KONTROLL)")


def is_qc(evidence: QcEvidence) -> bool:
    """The QC rule of the module docstring."""
    for identifier, text in evidence.specimen_roles:
        if identifier.upper() in _QC_SPECIMEN_ROLES or "QC" in text.upper():
            return True
    if evidence.patient_id:
        return False
    hints = (evidence.specimen_id, *evidence.descriptions)
    return any(_QC_WORD.search(hint.upper()) for hint in hints if hint)


def parse_results(raw: bytes, instrument_id: str) -> ParsedMessage:
    """One result message read with this profile's policy (see ``parse_observations``)."""
    return parse_observations(raw, instrument_id, tz=ANALYSER_TZ, qc=is_qc)
