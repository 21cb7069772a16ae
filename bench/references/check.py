"""A reference answers what taskql answers: each document, with representative variables, sent to both;
the same bytes (the hand-written reference) or the same JSON once parsed (bare Strawberry), else
``Mismatch`` with a readable diff. taskql's top-level ``extensions`` (what its rate limits charged: none
with RATE_LIMITS=false) is left out of the comparison; everything before it is compared byte for byte.

    python -m bench.references.check --taskql URL --reference URL --token TOKEN [--same-data]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import difflib
import json
from dataclasses import dataclass
from typing import Any

import httpx

from bench.references import documents


class Mismatch(AssertionError):
    """A reference answered differently from taskql."""


@dataclass(frozen=True, slots=True)
class Case:
    document: str
    variables: dict[str, Any]

    def __str__(self) -> str:
        return f"{self.document} {json.dumps(self.variables)}"


async def _post(client: httpx.AsyncClient, case: Case, token: str) -> httpx.Response:
    body = {"query": documents.read(case.document), "variables": case.variables}
    return await client.post("/graphql", json=body, headers={"authorization": f"Bearer {token}"})


async def cases(taskql: httpx.AsyncClient, token: str) -> list[Case]:
    """The cases to compare, with IDs and a cursor of the viewer's world (read from taskql): a page of 50 and
    of 1, the page after the first task, the tasks with their owners, the viewer's (or everyone's) stats and
    one owner's, a task by ``task(id:)`` and by ``node(id:)``, and its owner by ``node(id:)``."""
    first = (await _post(taskql, Case("TaskPage", {"first": 1}), token)).json()
    edges = (first.get("data") or {}).get("tasks", {}).get("edges")
    if not edges:
        raise Mismatch(f"taskql shows this viewer no task to compare with: {first}")
    task_id, owner_id = edges[0]["node"]["id"], edges[0]["node"]["owner"]["id"]
    after = first["data"]["tasks"]["pageInfo"]["endCursor"]
    return [
        Case("TaskPage", {"first": 50}),
        Case("TaskPage", {"first": 1}),
        Case("TaskPage", {"first": 50, "after": after}),
        Case("TasksWithOwners", {"first": 50}),
        Case("TaskStats", {}),
        Case("TaskStats", {"ownerId": owner_id}),
        Case("Task", {"id": task_id}),
        Case("Node", {"id": task_id}),
        Case("Node", {"id": owner_id}),
    ]


def _diff(expected: bytes, actual: bytes) -> str:
    try:
        left, right = (json.dumps(json.loads(raw), indent=1).splitlines() for raw in (expected, actual))
    except ValueError:
        left, right = [expected.decode(errors="replace")], [actual.decode(errors="replace")]
    lines = list(difflib.unified_diff(left, right, "taskql", "reference", lineterm="", n=2))
    if not lines:  # the same JSON, other bytes: show where they part
        at = next(
            (i for i, (a, b) in enumerate(zip(expected, actual, strict=False)) if a != b),
            min(len(expected), len(actual)),
        )
        window = slice(max(0, at - 40), at + 60)
        return (
            f"the same JSON, other bytes from offset {at}:\n"
            f"  taskql:    {expected[window]!r}\n  reference: {actual[window]!r}"
        )
    return "\n".join(lines[:80]) + ("\n..." if len(lines) > 80 else "")


def compare(case: Case, expected: httpx.Response, actual: httpx.Response, *, exact: bool) -> None:
    """Raise ``Mismatch`` unless ``actual`` answers what ``expected`` (taskql's) does."""
    if expected.status_code != 200 or "errors" in expected.json():
        raise Mismatch(f"{case}: taskql itself failed ({expected.status_code}): {expected.text[:500]}")
    if exact:
        same = _without_extensions(expected.content, actual.content) == actual.content
    else:
        same = {k: v for k, v in expected.json().items() if k != "extensions"} == _parsed(actual)
    if actual.status_code != expected.status_code or not same:
        kind = "bytes" if exact else "data"
        raise Mismatch(
            f"{case}: the reference answered other {kind} than taskql "
            f"(status {actual.status_code}, taskql's {expected.status_code}):\n"
            f"{_diff(expected.content, actual.content)}"
        )


def _without_extensions(expected: bytes, actual: bytes) -> bytes:
    """taskql's answer without the ``extensions`` it ends with (the cost report of its rate limits, which
    the references have not), if the rest is byte for byte the reference's answer; else unchanged."""
    body = actual[:-1]
    tail = expected[len(body) :]
    if expected.startswith(body) and tail.startswith(b',"extensions":{') and tail.endswith(b"}}"):
        with contextlib.suppress(ValueError):
            if isinstance(json.loads(tail[len(b',"extensions":') : -1]), dict):
                return actual
    return expected


def _parsed(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


async def check(
    taskql: httpx.AsyncClient, reference: httpx.AsyncClient, token: str, *, exact: bool
) -> list[Case]:
    """Compare every case; the cases compared (all alike), or ``Mismatch`` on the first that is not."""
    compared = await cases(taskql, token)
    for case in compared:
        expected, actual = await _post(taskql, case, token), await _post(reference, case, token)
        compare(case, expected, actual, exact=exact)
    return compared


async def check_urls(taskql_url: str, reference_url: str, token: str, *, exact: bool) -> list[Case]:
    async with (
        httpx.AsyncClient(base_url=taskql_url, timeout=30) as taskql,
        httpx.AsyncClient(base_url=reference_url, timeout=30) as reference,
    ):
        return await check(taskql, reference, token, exact=exact)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.references.check", description=__doc__)
    parser.add_argument("--taskql", required=True, help="taskql's base URL, e.g. http://127.0.0.1:8000")
    parser.add_argument("--reference", required=True, help="the reference's base URL")
    parser.add_argument("--token", required=True, help="an access token taskql issued")
    parser.add_argument("--same-data", action="store_true", help="compare parsed JSON, not bytes")
    options = parser.parse_args(argv)
    try:
        compared = asyncio.run(
            check_urls(options.taskql, options.reference, options.token, exact=not options.same_data)
        )
    except Mismatch as mismatch:
        raise SystemExit(str(mismatch)) from None
    print(f"{len(compared)} cases answered alike:", *compared, sep="\n  ")


if __name__ == "__main__":
    main()
