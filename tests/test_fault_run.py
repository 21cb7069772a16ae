"""The randomized fault run (issue 13): `python -m bench.fault_run` for 40 s on a scratch database of the
suite's PostgreSQL, with its own Redis (killed and restarted empty, restarted from an old snapshot, frozen)
and two taskql processes (one killed and restarted), under writes, cached reads, subscriptions and
revocations. The run happens once; each test reads one family of its figures, which must all be zero.
Its seed is printed (`-rA` shows it): `python -m bench.fault_run --seed N` runs it again."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from typing import Any

import pytest

from tests.databases import scratch_database
from tests.processes import ROOT, environment
from tests.services import Services


@pytest.fixture(scope="module")
async def fault_run(database: Services, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    async with scratch_database(database, "taskql_fault_run") as url:
        result = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "bench.fault_run", "--duration", "40"],
            env=environment(DATABASE_URL=url, TMPDIR=str(tmp_path_factory.mktemp("fault-run"))),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
    lines = result.stdout.strip().splitlines()
    assert lines, result.stderr[-3000:]
    assert lines[-1].startswith("{"), result.stdout[-3000:] + result.stderr[-3000:]
    print(result.stdout[-4000:])  # the figures and the seed, for -rA and for a failure's report
    figures: dict[str, Any] = json.loads(lines[-1])
    return figures


def test_every_fault_happened_under_load_with_cached_reads(fault_run: dict[str, Any]) -> None:
    faults = " / ".join(fault["fault"] for fault in fault_run["faults"])
    for fault in ("restarted empty", "old snapshot", "frozen", "server"):
        assert fault in faults, faults
    assert fault_run["writes_acknowledged"] > 100
    assert fault_run["cache_hits"] > 0  # else "no stale read" would prove little
    assert fault_run["events_delivered"] > 0


def test_no_read_misses_a_write_acknowledged_longer_ago_than_the_bound(fault_run: dict[str, Any]) -> None:
    assert fault_run["bound_s"] == 3.0  # OUTBOX_RELAY_SECONDS + REDIS_CIRCUIT_OPEN_SECONDS + 1 s
    assert fault_run["stale_reads"] == 0, fault_run["stale_examples"]


def test_every_subscriber_gets_every_acknowledged_event_once_with_growing_cursors(
    fault_run: dict[str, Any],
) -> None:
    figures = ("events_lost", "events_duplicated", "event_cursors_not_increasing", "events_foreign")
    assert {name: fault_run[name] for name in figures} == dict.fromkeys(figures, 0), fault_run[
        "event_examples"
    ]


def test_every_subscriber_gets_a_users_events_in_the_order_of_the_writes(fault_run: dict[str, Any]) -> None:
    assert fault_run["events_out_of_write_order"] == 0, fault_run["event_examples"]


def test_a_revoked_session_gets_no_event_and_no_answer_past_the_bounds(fault_run: dict[str, Any]) -> None:
    figures = (
        "revoked_events_late",
        "revoked_sockets_open_late",
        "revoked_me_answered_late",
        "demoted_me_still_admin_late",
    )
    assert {name: fault_run[name] for name in figures} == dict.fromkeys(figures, 0), fault_run["revocations"]
    assert not any("not done" in line for line in fault_run["revocations"]), fault_run["revocations"]


def test_no_acknowledged_write_is_lost(fault_run: dict[str, Any]) -> None:
    assert fault_run["acknowledged_writes_lost"] == 0, fault_run["lost_examples"]


def test_no_client_sees_an_error_and_no_server_logs_a_traceback(fault_run: dict[str, Any]) -> None:
    assert fault_run["internal_server_errors"] == 0, fault_run["unexpected_examples"]
    assert fault_run["unexpected_errors"] == 0, fault_run["unexpected_examples"]
    assert fault_run["server_tracebacks"] == 0
