"""What membership costs a task list: `TaskPage(first: 50)` as a member of 5 projects against the same
document as a user with personal tasks only, in server CPU per request.

    python -m bench.team_taskpage [--duration 5] [--rounds 3] [--connections 8] [--data-dir .data/bench-team]

1. Starts the data folder's embedded PostgreSQL and Redis in this process, then `python -m taskql serve` (one
   worker, ENVIRONMENT=production, LOG_LEVEL=WARNING, RESPONSE_CACHE=false: every request computes its
   answer, none is a cache hit).
2. Registers, through the API, a personal user (300 personal tasks), a member and three colleagues; writes
   five projects straight into PostgreSQL, the member a VIEWER of each and the colleagues EDITORs, with 60
   tasks each made by the colleagues and assigned among the member, two colleagues and nobody, plus 40
   personal tasks of the member's (what their TaskPage lists: their personal tasks and their projects').
3. ROUNDS rounds, each running wrk for DURATION seconds per scenario, alternating:
   ``personal``        TaskPage(first: 50) as the personal user
   ``member``          TaskPage(first: 50) as the member of 5 projects (the same document)
   ``member-team``     TeamTaskPage(first: 50) as the member: also each row's assignee and project
   Server CPU per request is the server process's user + system time (/proc) over the requests wrk completed;
   a scenario's figure is the median of its rounds. Prints the table and one JSON line with the ratios.

Needs wrk (Debian: ``apt-get install -y wrk``). Not a test: the figures go into closing notes and the README.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from bench.documents import cpu_seconds
from bench.http_load import Scenario, check_run, request_body, run_wrk
from bench.servers import ROOT, environment, refuse_busy_port, running, taskql
from core.ids import decode_id

HOST = "127.0.0.1"
QUERIES = ROOT / "graphql" / "queries"
PASSWORD = "bench team passphrase"  # noqa: S105 (the bench's own accounts, on its own data)
PROJECTS, TASKS_PER_PROJECT, MEMBER_PERSONAL, PERSONAL = 5, 60, 40, 300
REGISTER = "mutation($i: RegisterInput!) { register(input: $i) { accessToken user { id } } }"


async def register(client: httpx.AsyncClient, url: str, name: str) -> tuple[str, uuid.UUID]:
    email = f"{name}-{uuid.uuid4().hex[:8]}@bench.example.com"
    variables = {"i": {"email": email, "password": PASSWORD, "name": name.title()}}
    answer = (await client.post(url, json={"query": REGISTER, "variables": variables})).json()
    payload = answer["data"]["register"]
    return payload["accessToken"], decode_id(payload["user"]["id"])[1]


async def seed(url: str, dsn: str) -> dict[str, str]:
    """The people (their tokens by role in the bench) and their tasks."""
    async with httpx.AsyncClient(timeout=60) as client:
        personal, personal_id = await register(client, url, "personal")
        member, member_id = await register(client, url, "member")
        colleagues = [await register(client, url, f"colleague{n}") for n in range(3)]
    colleague_ids = [key for _, key in colleagues]
    base = datetime(2030, 1, 1, tzinfo=UTC)
    connection = await asyncpg.connect(dsn)
    try:
        rows: list[tuple[Any, ...]] = []
        for n in range(PERSONAL):
            rows.append((uuid.uuid4(), personal_id, f"personal {n}", None, None, base + timedelta(minutes=n)))
        for n in range(MEMBER_PERSONAL):
            rows.append((uuid.uuid4(), member_id, f"mine {n}", None, None, base + timedelta(minutes=3 * n)))
        for p in range(PROJECTS):
            project = uuid.uuid4()
            await connection.execute(
                "INSERT INTO projects (id, name, created_at, updated_at) VALUES ($1, $2, now(), now())",
                project,
                f"Project {p}",
            )
            members = [
                (project, member_id, "VIEWER"),
                *((project, key, "EDITOR") for key in colleague_ids[1:]),
            ]
            members.append((project, colleague_ids[0], "OWNER"))
            await connection.executemany(
                "INSERT INTO project_members (project_id, user_id, role) VALUES ($1, $2, $3)", members
            )
            assignees = (member_id, colleague_ids[1], colleague_ids[2], None)
            for n in range(TASKS_PER_PROJECT):
                at = base + timedelta(minutes=p + PROJECTS * n)
                rows.append((uuid.uuid4(), colleague_ids[n % 3], f"p{p} {n}", project, assignees[n % 4], at))
        await connection.executemany(
            "INSERT INTO tasks (id, owner_id, title, project_id, assignee_id, created_at, updated_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, $6)",
            rows,
        )
    finally:
        await connection.close()
    return {"personal": personal, "member": member}


def scenarios(url: str) -> list[tuple[Scenario, str]]:
    page = (QUERIES / "TaskPage.graphql").read_text()
    team = (QUERIES / "TeamTaskPage.graphql").read_text()
    return [
        (
            Scenario("personal", "cache_hit.lua", "POST", url, body=request_body({"first": 50}, page)),
            "personal",
        ),
        (Scenario("member", "cache_hit.lua", "POST", url, body=request_body({"first": 50}, page)), "member"),
        (
            Scenario(
                "member-team",
                "cache_hit.lua",
                "POST",
                url,
                body=request_body({"first": 50}, team, "TeamTaskPage"),
            ),
            "member",
        ),
    ]


def checked_length(scenario: Scenario, token: str) -> int:
    """The answer's length (wrk checks every answer under load has it), after checking it is a full page."""
    assert scenario.body is not None
    headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
    answer = httpx.post(scenario.url, content=scenario.body, headers=headers, timeout=30)
    payload = answer.json()
    assert answer.status_code == 200, answer.text[:500]
    assert "errors" not in payload, answer.text[:500]
    assert len(payload["data"]["tasks"]["edges"]) == 50, answer.text[:500]
    return len(answer.content)


def measure(args: argparse.Namespace) -> dict[str, list[float]]:
    from core.settings import Settings
    from taskql.cli import services

    data_dir = args.data_dir.resolve()
    env = environment(data_dir, RESPONSE_CACHE="false", ENVIRONMENT="production")
    env.setdefault("JWT_SECRET", "bench-team-secret-" + "x" * 40)
    resolved = services.resolve(Settings(data_dir=data_dir, jwt_secret=env["JWT_SECRET"]))
    assert resolved.database_url
    assert resolved.redis_url
    env.update(DATABASE_URL=resolved.database_url, REDIS_URL=resolved.redis_url)
    dsn = resolved.database_url.replace("postgresql+asyncpg://", "postgresql://")
    refuse_busy_port(HOST, args.port)
    taskql("migrate", env=env)  # with DATABASE_URL set, serve expects a migrated database (as in production)
    cpu: dict[str, list[float]] = {}
    with contextlib.ExitStack() as stack:
        stack.callback(services.stop_embedded)
        serve = [
            sys.executable,
            "-m",
            "taskql",
            "serve",
            "--host",
            HOST,
            "--port",
            str(args.port),
            "--workers",
            "1",
        ]
        log = stack.enter_context((data_dir / "team-taskpage.log").open("wb"))
        server = stack.enter_context(
            running(serve, env=env, ready_url=f"http://{HOST}:{args.port}/readyz", log=log)
        )
        url = f"http://{HOST}:{args.port}/graphql"
        tokens = asyncio.run(seed(url, dsn))
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="team-taskpage-")))
        cases = [
            (scenario, tokens[who], checked_length(scenario, tokens[who])) for scenario, who in scenarios(url)
        ]
        for scenario, token, length in cases:  # warm-up: plans, prepared statements, pools
            check_run(
                scenario,
                run_wrk(scenario, scenario.wrk_args(folder, "w"), token, length, 1, args.connections),
            )
        for round_number in range(args.rounds):
            for scenario, token, length in cases:
                before = cpu_seconds(server.pid)
                wrk = run_wrk(
                    scenario, scenario.wrk_args(folder, "r"), token, length, args.duration, args.connections
                )
                used = cpu_seconds(server.pid) - before
                check_run(scenario, wrk)
                per_request = 1e6 * used / max(int(wrk["requests"]), 1)
                cpu.setdefault(scenario.name, []).append(per_request)
                rate = wrk["requests"] / (wrk["duration_us"] / 1e6)
                figures = f"{rate:>8.1f}/s  {per_request:>8.1f} µs CPU/request"
                print(f"round {round_number + 1}  {scenario.name:<12} {figures}")
    return cpu


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--data-dir", type=Path, default=ROOT / ".data" / "bench-team")
    parser.add_argument("--port", type=int, default=8097)
    args = parser.parse_args()
    if args.data_dir.exists():
        import shutil

        shutil.rmtree(args.data_dir)  # a fresh data set every run: the seed's ids are the run's own
    cpu = measure(args)
    medians = {name: round(statistics.median(values), 1) for name, values in cpu.items()}
    print(f"\n{'scenario':<14}{'µs CPU/request (median)':>26}")
    for name, value in medians.items():
        print(f"{name:<14}{value:>26.1f}")
    ratios = {
        "member / personal": round(medians["member"] / medians["personal"], 3),
        "member-team / personal": round(medians["member-team"] / medians["personal"], 3),
    }
    print(json.dumps({"cpu_us_per_request": medians, "ratios": ratios, "rounds": cpu}))


if __name__ == "__main__":
    main()
