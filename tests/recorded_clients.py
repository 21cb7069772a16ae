"""Real JavaScript clients (a script in ``tests/js``) run against a live server in production mode, and the
record they print of every HTTP request they made (``tests/js/recorded_fetch.mjs``), which the tests read.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.factories import PASSWORD
from tests.graphql_client import operation
from tests.node import JS, node_with_packages
from tests.processes import TEST_SECRET, environment, free_port, start_server, stop, wait_ready
from tests.services import Services

TASK_TITLE = "Read the persisted-query docs"
GRAPHQL_RESPONSE = "application/graphql-response+json; charset=utf-8"


@dataclass(frozen=True)
class ClientRuns:
    """What the clients sent and got, run by run, the account they used, and the server's log."""

    runs: dict[str, dict[str, Any]]
    email: str
    server_log: str

    def requests(self, run: str) -> list[dict[str, Any]]:
        return list(self.runs[run]["requests"])

    def result(self, run: str) -> dict[str, Any]:
        return dict(self.runs[run]["result"])

    def explain(self, run: str) -> str:
        """The run's record and the server's log, for a failure message."""
        return f"{json.dumps(self.runs[run], indent=2)}\n--- server log ---\n{self.server_log}"

    def check_answered_from_the_hash_alone(self, run: str, *, after: str, method: str) -> None:
        """A fresh client's ``run``, once ``after`` registered the document: one ``method`` request with the
        same hash and no document, answered without errors, with ``after``'s result."""
        requests = self.requests(run)
        assert sent(requests) == [(method, False, True)], self.explain(run)
        (by_hash,) = requests
        assert by_hash["persistedQuery"] == self.requests(after)[0]["persistedQuery"]
        assert (by_hash["status"], "errors" in by_hash["body"]) == (200, False)
        assert self.result(run) == self.result(after)


def register_with_a_task(url: str, email: str, name: str) -> str:
    """A new account, made through the API, with one task titled ``TASK_TITLE``; its access token."""
    variables = {"input": {"email": email, "password": PASSWORD, "name": name}}
    registered = httpx.post(url, json={"query": operation("Register"), "variables": variables}).json()
    token = str(registered["data"]["register"]["accessToken"])
    created = httpx.post(
        url,
        json={"query": operation("CreateTask"), "variables": {"input": {"title": TASK_TITLE}}},
        headers={"authorization": f"Bearer {token}"},
    ).json()
    assert "errors" not in created, created
    return token


def run_clients(
    script: str, services: Services, folder: Path, name: str, *runs: str, **settings: str
) -> ClientRuns:
    """Serve taskql as in production (CSRF prevention on) with ``settings``, register ``name`` with a task,
    and run ``script`` with their token: the ``runs`` it names (TASKQL_RUNS), or all of them."""
    node = node_with_packages()
    env = environment(
        DATABASE_URL=services.database_url,
        REDIS_URL=services.redis_url,
        JWT_SECRET=TEST_SECRET,
        ENVIRONMENT="production",
        **settings,
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}/graphql"
    email = f"{name.lower()}-{uuid.uuid4().hex[:12]}@example.com"
    server = start_server(env, folder, port)
    try:
        wait_ready(server, port)
        token = register_with_a_task(url, email, name)
        completed = subprocess.run(
            [node, script],
            cwd=JS,
            env={**env, "TASKQL_URL": url, "TASKQL_TOKEN": token, "TASKQL_RUNS": ",".join(runs)},
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        server_log = stop(server)
    assert completed.returncode == 0, (
        f"{completed.stdout}{completed.stderr}\n--- server log ---\n{server_log}"
    )
    record = json.loads(completed.stdout)
    return ClientRuns({run["name"]: run for run in record["runs"]}, email, server_log)


def sent(requests: list[dict[str, Any]]) -> list[tuple[str, bool, bool]]:
    """Each request as (method, carried the query text, carried a persisted-query hash)."""
    return [
        (
            request["method"],
            request["hasQuery"] or request["urlHasQuery"],
            request["persistedQuery"] is not None,
        )
        for request in requests
    ]


def error_codes(request: dict[str, Any]) -> list[str]:
    return [error["extensions"]["code"] for error in request["body"].get("errors", [])]


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
