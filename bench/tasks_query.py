"""Benchmark: `tasks(first: 50)` with owners and their stats, on 1,000 users and 100,000 tasks.

    python -m bench.tasks_query [--requests 300] [--concurrency 1] [--data-dir .data/bench]

Starts `python -m taskql serve` on the embedded default in its own data folder (seeding it once, timed),
then drives requests over loopback from this process and prints latency percentiles. Not a test: the
figures go into closing notes and the README.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

import httpx

# ADMIN, ROOT and prepare stay importable from here for the commands that import them from this module.
from bench.servers import ADMIN as ADMIN
from bench.servers import LOGIN, environment, running
from bench.servers import ROOT as ROOT
from bench.servers import prepare as prepare

QUERY = (ROOT / "graphql" / "queries" / "TasksWithOwners.graphql").read_text()


async def measure(base: str, requests: int, concurrency: int, first: int) -> list[float]:
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        login = await client.post(
            "/graphql", json={"query": LOGIN, "variables": {"i": {"email": ADMIN[0], "password": ADMIN[1]}}}
        )
        token = login.json()["data"]["login"]["accessToken"]
        headers = {"authorization": f"Bearer {token}"}
        body = {"query": QUERY, "variables": {"first": first}}
        for _ in range(20):  # warm-up: connection pools, caches, JIT-less but warm Python
            (await client.post("/graphql", json=body, headers=headers)).raise_for_status()
        latencies: list[float] = []
        queue = iter(range(requests))

        async def worker() -> None:
            for _ in queue:
                started = time.perf_counter()
                response = await client.post("/graphql", json=body, headers=headers)
                latencies.append(time.perf_counter() - started)
                payload = response.json()
                assert "errors" not in payload, payload
                assert len(payload["data"]["tasks"]["edges"]) == first, payload

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        print(f"{requests} requests, concurrency {concurrency}: {requests / elapsed:.0f} requests/s")
        return latencies


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--first", type=int, default=50)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--data-dir", type=Path, default=ROOT / ".data" / "bench")
    parser.add_argument("--port", type=int, default=8099)
    args = parser.parse_args()

    data_dir = args.data_dir.resolve()
    env = environment(data_dir)
    prepare(env, data_dir, args.users, args.tasks)
    base = f"http://127.0.0.1:{args.port}"
    serve = [sys.executable, "-m", "taskql", "serve", "--port", str(args.port)]
    with running(serve, env=env, ready_url=f"{base}/readyz"):
        latencies = asyncio.run(measure(base, args.requests, args.concurrency, args.first))
    ms = sorted(latency * 1000 for latency in latencies)
    quantiles = statistics.quantiles(ms, n=100)
    print(
        json.dumps(
            {
                "query": f"TasksWithOwners(first: {args.first}), as an admin",
                "median_ms": round(statistics.median(ms), 2),
                "p95_ms": round(quantiles[94], 2),
                "p99_ms": round(quantiles[98], 2),
                "min_ms": round(ms[0], 2),
            }
        )
    )


if __name__ == "__main__":
    main()
