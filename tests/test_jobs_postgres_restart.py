"""PostgreSQL restarted under a running worker: the worker inside ``serve`` takes jobs again by itself, and
no job enqueued before, during or after is lost. Its own PostgreSQL (tests.fault_servers), a real
``taskql serve`` and a real SMTP server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fault_servers import PostgresProcess, taskql_on
from tests.graphql_client import GraphQLClient
from tests.mailbox import smtp_sink

OUTAGE_SECONDS = 8.0
RESET = "mutation($e: String!) { requestPasswordReset(email: $e) }"


@pytest.fixture
def postgres(tmp_path: Path) -> Iterator[PostgresProcess]:
    server = PostgresProcess(tmp_path)
    yield server
    server.close()


async def test_the_worker_takes_jobs_again_after_postgres_restarts(
    postgres: PostgresProcess, tmp_path: Path
) -> None:
    with (
        smtp_sink() as (sink, url),
        taskql_on(
            postgres, tmp_path, JOBS_EMBEDDED_WORKER="true", SMTP_URL=url, JOBS_HEARTBEAT_SECONDS="2"
        ) as server,
    ):
        async with httpx.AsyncClient(base_url=server.url) as http:
            gql = GraphQLClient(http)
            register = {
                "input": {"email": "pat@example.com", "password": "a long enough passphrase", "name": "Pat"}
            }
            (await gql.run("Register", register)).ok()
            first = await sink.next("pat@example.com")
            assert first["X-Taskql-Mail"] == "verify_email"
            seen = {first["Message-ID"]}

            for mode in ("fast", "immediate"):  # a planned restart, then a crash
                await asyncio.to_thread(postgres.stop, mode)
                await asyncio.sleep(OUTAGE_SECONDS)  # the fault's length: the worker's queries fail meanwhile
                await asyncio.to_thread(postgres.start)
                # The API answers again at once (test_postgres_restart); the request is retried until then.
                async with asyncio.timeout(30):
                    while (await gql.query(RESET, {"e": "pat@example.com"})).errors:  # noqa: ASYNC110
                        await asyncio.sleep(0.1)
                mail = await sink.next("pat@example.com", timeout=30)
                # At least once: a job whose completion the outage kept from being recorded runs again, and
                # sends the same message (its Message-ID) again.
                while mail["Message-ID"] in seen:
                    mail = await sink.next("pat@example.com", timeout=30)
                assert mail["X-Taskql-Mail"] == "password_reset", mode
                seen.add(mail["Message-ID"])
