"""The documents the references serve (``graphql/queries``), and which one a request body names."""

from __future__ import annotations

from pathlib import Path

QUERIES = Path(__file__).resolve().parent.parent.parent / "graphql" / "queries"
NAMES = ("TaskPage", "TasksWithOwners", "TaskStats", "Task", "Node")


def read(name: str) -> str:
    return (QUERIES / f"{name}.graphql").read_text()


def by_text() -> dict[str, str]:
    """Each document's exact text (as clients send it) to its operation name."""
    return {read(name): name for name in NAMES}


def operation_of(body: object, texts: dict[str, str]) -> str | None:
    """The document a request body asks for: by its exact text, else by ``operationName`` when its text is
    one of ours; None for anything else."""
    if not isinstance(body, dict):
        return None
    query = body.get("query")
    if not isinstance(query, str):
        return None
    name = texts.get(query)
    if name is not None:
        return name
    named = body.get("operationName")
    return named if named in NAMES and query.strip() == read(str(named)).strip() else None
