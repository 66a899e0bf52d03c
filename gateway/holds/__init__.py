"""The actions on held results, each an electronic signature: release, correct, override,
verify, reject, co-sign.

Every action is a store command (a function of ``Tx``) taking the result, the signing person
and the rule context (config; the store's facts are read in the transaction), and answers an
``ActionOutcome``: done, or refused with a reason code (never an exception for what a person
asked). Who may take which action on which hold is ``gateway.people.roles.HOLD_ACTIONS``; the
checks are in ``subject``, the signing and the moves in ``signing``. The CLI and the web call
these same functions after checking the password (``gateway.store.signin.authenticate`` with
``purpose="signature"``). ``rerun`` is ingest's part: a re-run by a certified operator replaces
a result held for an uncertified one.
"""

from __future__ import annotations

from gateway.holds.correction import correct
from gateway.holds.cosign import cosign
from gateway.holds.outcome import ActionOutcome, Done, Refusal
from gateway.holds.sign_off import override, release
from gateway.holds.subject import signer_problem
from gateway.holds.verification import reject, same_reading, verify

__all__ = [
    "ActionOutcome",
    "Done",
    "Refusal",
    "correct",
    "cosign",
    "override",
    "reject",
    "release",
    "same_reading",
    "signer_problem",
    "verify",
]
