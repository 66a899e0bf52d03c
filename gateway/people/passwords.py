"""Password hashing for sign-in and electronic signatures: argon2id (argon2-cffi), nothing else.

The parameters are the library's defaults (RFC 9106's second recommendation), and a stored
hash made with older parameters is re-hashed on the next good sign-in (``needs_rehash``).
"""

from __future__ import annotations

from typing import Final

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_HASHER: Final = PasswordHasher()
MIN_LENGTH: Final = 10
#: a hash nobody's password matches: verified against for an unknown user, so that a wrong
#: user name takes as long to refuse as a wrong password
_DUMMY: Final = _HASHER.hash("not a password of anyone: timing only")


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    """Whether ``password`` matches ``stored``; False for a missing or malformed hash."""
    try:
        return _HASHER.verify(stored or _DUMMY, password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    try:
        return _HASHER.check_needs_rehash(stored)
    except InvalidHashError:
        return True


def password_problem(password: str, person: str = "") -> str | None:
    """Why ``password`` may not be set (a catalogue code under ``password.``), or None."""
    if len(password) < MIN_LENGTH:
        return "too_short"
    if person and person.casefold() in password.casefold():
        return "contains_user"
    if len(set(password)) < 4:
        return "too_simple"
    return None
