"""The generic HL7 profile's QC rule, one piece of evidence at a time."""

from __future__ import annotations

import pytest

from drivers.analysers.profiles.hl7_generic import is_qc
from drivers.protocols.hl7.message import QcEvidence


def evidence(
    *,
    patient_id: str = "",
    specimen_id: str = "S-1",
    roles: tuple[tuple[str, str], ...] = (),
    descriptions: tuple[str, ...] = (),
) -> QcEvidence:
    return QcEvidence(patient_id, specimen_id, roles, descriptions)


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        (evidence(), False),
        (evidence(roles=(("Q", ""),)), True),
        (evidence(roles=(("e", ""),)), True),  # electronic QC, in any case
        (evidence(roles=(("QC", ""),)), True),
        (evidence(roles=(("P", "patient"),)), False),
        (evidence(roles=(("P", "xQCx"),)), True),  # "QC" anywhere in the role's text
        (evidence(roles=(("P", ""), ("Q", ""))), True),  # any SPM of the groups
        (evidence(patient_id="0101", roles=(("Q", ""),)), True),  # the role wins over a patient
        (evidence(specimen_id="QC-1"), True),
        (evidence(specimen_id="kontroll-2"), True),
        (evidence(descriptions=("CRP Control CRP",)), True),
        (evidence(descriptions=("CRP CRP", "BLD QC blood")), True),
        (evidence(specimen_id="NQC-1", descriptions=("A BQC",)), False),  # not a word start
        (evidence(patient_id="0101", specimen_id="QC-1"), False),  # a patient: words don't count
        (evidence(patient_id="0101", descriptions=("QC level 1",)), False),
    ],
)
def test_qc_rule(case: QcEvidence, expected: bool) -> None:
    assert is_qc(case) is expected
