"""The release this process runs: a digest of the server's own sources."""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

CODE_PACKAGES = ("core", "models", "auth", "resolvers", "schema", "taskql")
ROOT = Path(__file__).resolve().parents[2]


def source_digest(root: Path, packages: tuple[str, ...] = CODE_PACKAGES) -> str:
    """A digest of the Python sources of ``packages`` under ``root``: names and contents."""
    digest = hashlib.sha256()
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


@functools.cache
def code_digest() -> str:
    """The release: the digest of the server's own sources (a few hundred kilobytes, read once)."""
    return source_digest(ROOT)
