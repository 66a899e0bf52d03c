"""What a hold action answers: done (and what became of the result) or refused (and why).

A refusal is a code, never an exception: a person asking for something the rules do not allow
is not an error. Screens render the code from the catalogues (``action.refused.<code>``, and
``action.done.<code>`` for what was done), in the reader's language.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from gateway.catalogue import text
from gateway.people.roles import HoldAction
from gateway.texts import render


class Refusal(enum.StrEnum):
    """Why an action was refused (catalogue ``action.refused.<code>``)."""

    NO_SUCH_RESULT = "no_such_result"
    #: its sender marked it test data: it never goes to the LIS, whoever asks
    TEST_DATA = "test_data"
    NOT_HELD = "not_held"
    #: a correction of a result the LIS already has is a new result (not this action)
    ALREADY_SENT = "already_sent"
    #: none of the result's open holds is ended by this action (params: holds, actions)
    NO_OPEN_HOLD = "no_open_hold"
    #: an invalid patient ID is never released unchanged: only a correction ends that hold
    NEEDS_CORRECTION = "needs_correction"
    UNKNOWN_PERSON = "unknown_person"
    INACTIVE_PERSON = "inactive_person"
    WRONG_ROLE = "wrong_role"
    #: the signer performed the result: a second person must act
    SAME_PERSON = "same_person"
    NOT_CERTIFIED = "not_certified"
    NOTE_REQUIRED = "note_required"
    REASON_REQUIRED = "reason_required"
    COMMENT_REQUIRED = "comment_required"
    BAD_FIELD = "bad_field"
    EMPTY_VALUE = "empty_value"
    TOO_LONG = "too_long"
    UNCHANGED = "unchanged"
    INVALID_NEW_ID = "invalid_new_id"
    #: a qc_lockout hold is released only after its lockout is lifted (params: lockout)
    LOCKOUT_OPEN = "lockout_open"


#: refusals for what the caller typed, not for the result's or the signer's situation (the
#: CLI exits 2 for these, 1 for the rest)
INPUT_REFUSALS: Final = frozenset(
    {
        Refusal.NOTE_REQUIRED,
        Refusal.REASON_REQUIRED,
        Refusal.COMMENT_REQUIRED,
        Refusal.BAD_FIELD,
        Refusal.EMPTY_VALUE,
        Refusal.TOO_LONG,
    }
)


class Done(enum.StrEnum):
    """What became of the result after a signed action (catalogue ``action.done.<code>``)."""

    #: no open hold remains: released and queued for the LIS
    QUEUED = "queued"
    #: signed, but other holds remain (params: holds)
    STILL_HELD = "still_held"
    #: rejected, or the verifier read another value: discarded, a deviation recorded
    DISCARDED = "discarded"


#: notes an outcome may carry besides its main text (catalogue ``action.note.<code>``)
NOTE_NO_SESSION: Final = "no_session"
NOTE_SESSION: Final = "session"
NOTE_DISAGREED: Final = "disagreed"
NOTE_NOT_NAMED_SUPERVISOR: Final = "not_named_supervisor"


@dataclass(frozen=True, slots=True)
class ActionOutcome:
    """The answer of one hold action.

    ``code`` is a ``Refusal`` when ``done`` is false, else a ``Done``. ``params`` fill its
    sentence; ``state`` is the result's state afterwards ("" when there is no such result);
    ``ended`` and ``remaining`` are hold reasons; ``notes`` are extra sentences (``action.note``
    codes) such as "the supervisor had no active session when the trainee worked".
    """

    result_id: int
    action: HoldAction
    done: bool
    code: str
    params: tuple[tuple[str, str], ...] = ()
    state: str = ""
    signature_id: int | None = None
    deviation_id: int | None = None
    ended: tuple[str, ...] = ()
    remaining: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def refused(self) -> bool:
        return not self.done

    @property
    def bad_input(self) -> bool:
        """Refused for what was typed (a missing note, an unknown field)."""
        return not self.done and self.code in INPUT_REFUSALS

    @property
    def key(self) -> str:
        return f"action.{'done' if self.done else 'refused'}.{self.code}"

    def message(self, lang: str) -> str:
        """The outcome as one sentence in ``lang``, its notes after it."""
        params = dict(self.params)
        values = {**params, **_nested(lang, params), "id": str(self.result_id)}
        values["action"] = text(lang, f"action.name.{self.action.value}")
        sentences = [render(lang, self.key, values)]
        sentences += [text(lang, f"action.note.{note}", **values) for note in self.notes]
        return " ".join(sentences)


def _nested(lang: str, params: Mapping[str, str]) -> dict[str, str]:
    """Parameters that are codes (a state, roles, hold reasons, actions) as words in ``lang``."""
    out: dict[str, str] = {}
    if "state" in params:
        out["state"] = text(lang, f"state.{params['state']}")
    if "status" in params:
        out["status"] = text(lang, f"action.status.{params['status']}")
    for name, group in (("roles", "role"), ("holds", "reason"), ("actions", "action.name")):
        if name in params:
            codes = [c for c in params[name].split(";") if c]
            out[name] = ", ".join(text(lang, f"{group}.{code}") for code in codes)
    return out


def refused(
    result_id: int, action: HoldAction, code: Refusal, in_state: str = "", **params: str
) -> ActionOutcome:
    """A refusal of ``action`` on a result in state ``in_state``; ``params`` fill its text."""
    return ActionOutcome(result_id, action, False, code.value, tuple(params.items()), in_state)
