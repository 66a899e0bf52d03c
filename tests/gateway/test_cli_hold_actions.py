"""`trygg results release|correct|override|verify|reject|cosign`: the password, the same checks
as the web, the outcome from the catalogue, exit 0 / 1 (refused) / 2 (bad input)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gateway.cli import app
from tests.gateway.hold_site import INVALID, PASSWORD, VALID, Site, make_site

runner = CliRunner()
SIGNERS = ("kari", "sara", "vera", "viktor", "ola")
ENV = {"TRYGG_PASSWORD": PASSWORD}


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    made = make_site(tmp_path, passwords=SIGNERS)
    yield made
    made.engine.dispose()


def trygg(site: Site, *args: str, env: dict[str, str] | None = ENV, given: str | None = None):  # type: ignore[no-untyped-def]
    return runner.invoke(app, [*args, "--config", str(site.path)], env=env, input=given)


def shown(site: Site, result_id: int) -> dict:  # type: ignore[type-arg]
    result = trygg(site, "results", "show", str(result_id))
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_release_of_an_invalid_id_is_refused_and_the_correction_sends_it(site: Site) -> None:
    result_id = str(site.ingest(patient=INVALID))
    refused = trygg(site, "results", "release", result_id, "--by", "kari", "--note", "ok")
    assert refused.exit_code == 1
    assert "Refused" in refused.stderr and "never released unchanged" in refused.stderr
    invalid = trygg(
        site, "results", "correct", result_id, "--user", "vera",
        "--field", "patient_id", "--value", INVALID[:-1] + "9", "--reason", "label",
    )  # fmt: skip
    assert invalid.exit_code == 1 and "check digit 2 is wrong" in invalid.stderr
    done = trygg(
        site, "results", "correct", result_id, "--user", "vera",
        "--field", "patient_id", "--value", VALID, "--reason", "label",
    )  # fmt: skip
    assert done.exit_code == 0 and "queued for the LIS" in done.stdout
    data = shown(site, int(result_id))
    assert data["state"] == "queued" and data["patient_id"] == "010100*****"
    assert data["corrections"] == [
        {
            "id": 1,
            "at": data["corrections"][0]["at"],
            "person": "vera",
            "field": "patient_id",
            "old_value": "010100*****",
            "new_value": "010100*****",
            "reason": "label",
        }
    ]
    (signature,) = data["signatures"]
    assert (signature["person"], signature["meaning"]) == ("vera", "correct")
    full = trygg(site, "results", "show", result_id, "--show-patient-id")
    assert json.loads(full.stdout)["corrections"][0]["old_value"] == INVALID
    assert trygg(site, "audit", "verify").exit_code == 0


def test_the_password_is_asked_and_checked(site: Site) -> None:
    result_id = str(site.ingest(patient=""))
    args = ("results", "release", result_id, "--user", "kari", "--note", "research")
    wrong = trygg(site, *args, env={"TRYGG_PASSWORD": "not it"})
    assert wrong.exit_code == 1 and "Wrong user or password: nothing was signed" in wrong.stderr
    nobody = trygg(site, "results", "release", result_id, "--user", "nobody", "--note", "x")
    assert nobody.exit_code == 1 and "Wrong user or password" in nobody.stderr
    assert shown(site, int(result_id))["signatures"] == []
    prompted = trygg(site, *args, env={}, given=PASSWORD + "\n")
    assert prompted.exit_code == 0, prompted.output
    assert "Password (signs the action)" in prompted.stdout
    assert PASSWORD not in prompted.stdout  # hidden input
    assert shown(site, int(result_id))["state"] == "queued"


def test_each_action_from_the_command_line(site: Site) -> None:
    uncertified = str(site.ingest(operator="ULF", specimen="A1"))
    strip = str(site.ingest("GLU", "2+", operator="OLA", specimen="U1"))
    other_strip = str(site.ingest("GLU", "neg", operator="OLA", specimen="U2"))
    trainee = str(site.ingest(operator="TINA", specimen="T1"))

    assert (
        trygg(site, "results", "override", uncertified, "--user", "ola", "--reason", "x").exit_code
        == 1
    )
    override = trygg(
        site, "results", "override", uncertified, "--user", "sara", "--reason", "paper"
    )
    assert override.exit_code == 0 and shown(site, int(uncertified))["state"] == "queued"

    disagree = trygg(site, "results", "verify", strip, "--user", "vera", "--value-read", "1+")
    assert disagree.exit_code == 0
    assert "discarded" in disagree.stdout and "Kvalitetsansvarlig" in disagree.stdout
    assert shown(site, int(strip))["state"] == "discarded"

    no_comment = trygg(site, "results", "reject", other_strip, "--user", "vera", "--comment", " ")
    assert no_comment.exit_code == 2 and "needs a comment" in no_comment.stderr
    rejected = trygg(site, "results", "reject", other_strip, "--user", "viktor", "--comment", "old")
    assert rejected.exit_code == 0 and shown(site, int(other_strip))["state"] == "discarded"

    cosigned = trygg(site, "results", "cosign", trainee, "--user", "sara", "--comment", "watched")
    assert cosigned.exit_code == 0 and "no active session" in cosigned.stdout
    (signature,) = shown(site, int(trainee))["signatures"]
    assert signature["detail"]["supervisor_session"] is False
    assert trygg(site, "audit", "verify").exit_code == 0


def test_bad_input_exits_2(site: Site) -> None:
    result_id = str(site.ingest(patient=""))
    blank = trygg(site, "results", "release", result_id, "--user", "kari", "--note", "  ")
    assert blank.exit_code == 2 and "needs a note" in blank.stderr
    missing = trygg(site, "results", "release", result_id, "--user", "kari")
    assert missing.exit_code == 2  # --note is required: asked before any password
    field = trygg(
        site, "results", "correct", result_id, "--user", "vera",
        "--field", "value", "--value", "5", "--reason", "x",
    )  # fmt: skip
    assert field.exit_code == 2


def test_help_documents_the_password_and_the_old_option() -> None:
    for action in ("release", "correct", "override", "verify", "reject", "cosign"):
        result = runner.invoke(app, ["results", action, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0
        assert "TRYGG_PASSWORD" in result.stdout and "--by" in result.stdout, action
