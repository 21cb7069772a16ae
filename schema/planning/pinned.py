"""The library versions the compat modules were written for, checked when they are imported."""

from __future__ import annotations

from importlib.metadata import version


class UnsupportedVersion(RuntimeError):
    """A compat module was imported with another version of its library than it was written for."""


def require(distribution: str, written_for: str, module: str) -> None:
    """Refuse to go on when ``distribution`` is not at ``written_for``: ``module`` reads its private
    attributes, which any release may rename or drop without notice."""
    installed = version(distribution)
    if installed != written_for:
        raise UnsupportedVersion(
            f"{module} reads private attributes of {distribution} {written_for}, but {distribution} "
            f"{installed} is installed. Install the version in uv.lock (`uv sync --frozen`); to move to "
            f"{installed}, check each function of {module} against that version's source, then change "
            "WRITTEN_FOR there."
        )
