"""argon2id password hashing, off the event loop (hashing takes tens of milliseconds of CPU)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

# OWASP's argon2id recommendation: 19 MiB of memory, 2 iterations, 1 degree of parallelism.
HASHER = PasswordHasher(time_cost=2, memory_cost=19_456, parallelism=1, hash_len=32, salt_len=16)
# The hash of a random, discarded password, with the same parameters: verifying against it costs what a
# real verification costs, so an unknown email takes as long to refuse as a wrong password.
DUMMY_HASH = (
    "$argon2id$v=19$m=19456,t=2,p=1$nyOPOwnyOUu8up567G0gYg$C2A3QdqSufOY+VgxeoxgXQddDErgH5LY9EmJ7rNCcaY"
)


# Hashing runs on two threads of its own, not on the default executor's (CPU count + 4): each thread's
# 19 MiB working memory stays with the process once used, and on a busy login endpoint more threads than
# cores only queue for the CPU anyway. No thread starts before the first hash.
HASHING_THREADS = 2
T = TypeVar("T")
_hashing = ThreadPoolExecutor(max_workers=HASHING_THREADS, thread_name_prefix="argon2")


async def _off_loop(function: Callable[..., T], *args: str) -> T:
    return await asyncio.get_running_loop().run_in_executor(_hashing, function, *args)


async def hash_password(password: str) -> str:
    return await _off_loop(HASHER.hash, password)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return HASHER.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


async def verify_password(password_hash: str | None, password: str) -> bool:
    """Check a password. With no hash (unknown account) the dummy hash is verified instead: the answer is
    False either way, and takes the same time."""
    matches = await _off_loop(_verify, password_hash or DUMMY_HASH, password)
    return matches and password_hash is not None


def needs_rehash(password_hash: str) -> bool:
    return HASHER.check_needs_rehash(password_hash)
