"""argon2id password hashing, off the event loop (hashing takes tens of milliseconds of CPU)."""

from __future__ import annotations

import asyncio
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

# OWASP's argon2id recommendation: 19 MiB of memory, 2 iterations, 1 degree of parallelism.
HASHER = PasswordHasher(time_cost=2, memory_cost=19_456, parallelism=1, hash_len=32, salt_len=16)


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(HASHER.hash, password)


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return HASHER.hash("taskql: a password nobody has")


async def verify_password(password_hash: str | None, password: str) -> bool:
    """Check a password. With no hash (unknown account) a dummy hash is verified, so that the time taken
    does not tell whether the account exists."""
    target = password_hash if password_hash is not None else await asyncio.to_thread(_dummy_hash)

    def verify() -> bool:
        try:
            return HASHER.verify(target, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(verify) and password_hash is not None


def needs_rehash(password_hash: str) -> bool:
    return HASHER.check_needs_rehash(password_hash)
