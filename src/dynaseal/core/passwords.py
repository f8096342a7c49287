"""bcrypt password hashing; the original demo data's ``$2b$12$`` hashes verify as-is."""

from __future__ import annotations

import bcrypt

# Checked against when the account does not exist, so that a wrong username costs
# the same time as a wrong password and does not reveal which accounts exist.
_DUMMY_HASH = bcrypt.hashpw(b"dynaseal-no-such-user", bcrypt.gensalt(rounds=12))


def hash_password(password: str) -> str:
    return bcrypt.hashpw(_encode(password), bcrypt.gensalt(rounds=12)).decode()


def verify_password(password: str, hashed: str | None) -> bool:
    """Constant-time check; a missing or malformed hash is simply a failed check."""
    try:
        if hashed is None:
            bcrypt.checkpw(_encode(password), _DUMMY_HASH)
            return False
        return bcrypt.checkpw(_encode(password), hashed.encode())
    except ValueError:
        return False


def _encode(password: str) -> bytes:
    # bcrypt only looks at 72 bytes and newer releases refuse longer input.
    return password.encode()[:72]
