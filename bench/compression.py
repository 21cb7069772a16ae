"""What compression saves and costs on a 100-row page: `TaskPage(first: 100)` as a user with 100 tasks.

    python -m bench.compression [--requests 200] [--rounds 5] [--data-dir .data/compression]

Prints the answer's size as it is and gzipped (zlib levels 1, 6 and 9, with the CPU each takes), then the
server's CPU per request in process (the app called as ASGI, no sockets, no HTTP client: nothing but the
server's work is timed) for a miss (a new variable on every request) and a cache hit, with COMPRESSION off
and on (a client that accepts gzip, or not), in rounds, each in a new order. Embedded PostgreSQL and Redis
in ``--data-dir`` unless DATABASE_URL and REDIS_URL are set. Not a test: figures go into notes."""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import random
import statistics
import time
import uuid
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
QUERY = (ROOT / "graphql" / "queries" / "TaskPage.graphql").read_text()
EMAIL, PASSWORD = "compression@example.com", "a long enough passphrase"


async def call(
    app: Any, body: bytes, headers: list[tuple[bytes, bytes]]
) -> tuple[int, dict[str, str], bytes]:
    """POST /graphql to the app as a server would, and what it sent back."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/graphql",
        "raw_path": b"/graphql",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"taskql.test"), (b"content-type", b"application/json"), *headers],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
        "state": app.resources.state(),
    }
    sent = {"more": True}
    status, response_headers, chunks = 0, dict[str, str](), list[bytes]()

    async def receive() -> dict[str, Any]:
        if sent["more"]:
            sent["more"] = False
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # never: the app has the whole body
        raise AssertionError

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
            response_headers.update((k.decode(), v.decode()) for k, v in message["headers"])
        else:
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, response_headers, b"".join(chunks)


async def seed(database_url: str) -> None:
    from auth.passwords import hash_password

    connection = await asyncpg.connect(database_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        owner = await connection.fetchval("SELECT id FROM users WHERE email = $1", EMAIL)
        if owner is None:
            owner = uuid.uuid4()
            await connection.execute(
                "INSERT INTO users (id, email, name, password_hash, role, is_active, created_at, updated_at)"
                " VALUES ($1, $2, 'Compression Bench', $3, 'USER', true, now(), now())",
                owner,
                EMAIL,
                await hash_password(PASSWORD),
            )
            await connection.executemany(
                "INSERT INTO tasks (id, owner_id, title, description, status, priority, due_at, tags,"
                " created_at, updated_at) VALUES ($1, $2, $3, $4, 'TODO', 'MEDIUM',"
                " now() + interval '3 days', $5, now(), now())",
                [
                    (uuid.uuid4(), owner, f"Write the report for week {n}", "", ["work", f"team-{n % 7}"])
                    for n in range(100)
                ],
            )
    finally:
        await connection.close()


def zlib_levels(body: bytes, rounds: int = 200) -> None:
    print(f"answer: {len(body):,} bytes as it is")
    for level in (1, 6, 9):
        started = time.process_time()
        for _ in range(rounds):
            compressor = zlib.compressobj(level, zlib.DEFLATED, 31)
            out = compressor.compress(body) + compressor.flush()
        cost = (time.process_time() - started) / rounds * 1e6
        print(f"  gzip level {level}: {len(out):,} bytes ({len(out) / len(body):.1%}), {cost:.0f} µs CPU")


async def measure(args: argparse.Namespace) -> None:
    from asgi_lifespan import LifespanManager

    from core.settings import Settings
    from taskql.app import create_app
    from taskql.cli import services
    from taskql.data import migrations
    from taskql.http import compression

    settings = services.resolve(Settings(data_dir=args.data_dir, log_level="WARNING", rate_limits=False))
    assert settings.database_url
    await asyncio.to_thread(migrations.upgrade, settings.database_url)
    await seed(settings.database_url)
    apps = {on: create_app(settings.model_copy(update={"compression": on})) for on in (False, True)}
    async with LifespanManager(apps[False]), LifespanManager(apps[True]):
        login = {"query": "mutation($i: LoginInput!){ login(input: $i) { accessToken } }"}
        login["variables"] = {"i": {"email": EMAIL, "password": PASSWORD}}  # type: ignore[assignment]
        _, _, answer = await call(apps[True], json.dumps(login).encode(), [])
        token = json.loads(answer)["data"]["login"]["accessToken"]
        auth = [(b"authorization", f"Bearer {token}".encode())]
        gzip_ok = [*auth, (b"accept-encoding", b"gzip, deflate, br")]

        def page(n: object) -> bytes:  # a variable the operation does not use: new bytes, the same page
            return json.dumps({"query": QUERY, "variables": {"first": 100, "n": n}}).encode()

        _, _, plain = await call(apps[False], page("sizes"), auth)
        assert len(json.loads(plain)["data"]["tasks"]["edges"]) == 100
        zlib_levels(plain)
        counter = iter(range(10**9))

        def fresh() -> bytes:
            return page(next(counter))

        Case = tuple[bool, int, Callable[[], bytes], list[tuple[bytes, bytes]]]
        cases: dict[str, Case] = {  # name: (COMPRESSION, zlib level, a request's body, its headers)
            "miss, off": (False, 1, fresh, gzip_ok),
            "miss, on (identity)": (True, 1, fresh, auth),
            "miss, on (gzip)": (True, 1, fresh, gzip_ok),
            "miss, on (gzip 6)": (True, 6, fresh, gzip_ok),
            "hit, off": (False, 1, functools.partial(page, "hit-off"), gzip_ok),
            "hit, on (identity)": (True, 1, functools.partial(page, "hit-on"), auth),
            "hit, on (gzip)": (True, 1, functools.partial(page, "hit-on"), gzip_ok),
        }
        sizes: dict[str, int] = {}
        for name, (flag, level, body_of, headers) in cases.items():  # warm-up, and the sizes sent
            compression.LEVEL = level
            for _ in range(30):
                status, sent_headers, sent = await call(apps[flag], body_of(), headers)
                assert status == 200, sent
            expected = "HIT" if name.startswith("hit") else "MISS"
            assert sent_headers["x-cache"] == expected, (name, sent_headers)
            sizes[name] = len(sent)
        cpu: dict[str, list[float]] = {name: [] for name in cases}
        order = list(cases)
        for _ in range(args.rounds):
            random.shuffle(order)  # no case always runs after the same one
            for name in order:
                flag, level, body_of, headers = cases[name]
                compression.LEVEL = level
                started = time.process_time()
                for _ in range(args.requests):
                    await call(apps[flag], body_of(), headers)
                cpu[name].append((time.process_time() - started) / args.requests * 1e6)
    print(
        f"\nserver CPU per request in process (median of {args.rounds} rounds, in a new order each, of "
        f"{args.requests}):"
    )
    for name, figures in cpu.items():
        spread = f"{min(figures):.0f} to {max(figures):.0f}"
        print(f"  {name:<22} {statistics.median(figures):>6.0f} µs ({spread}), {sizes[name]:,} bytes sent")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--data-dir", type=Path, default=ROOT / ".data" / "compression")
    asyncio.run(measure(parser.parse_args()))


if __name__ == "__main__":
    main()
