"""Where the memory of an idle taskEvents subscription goes, on the server.

    python -m bench.ws_memory [--subscribers 500] [--users 100] [--ws sansio|websockets|wsproto]
                              [--trace] [--top 25] [--data-dir .data/bench-subs] [--port 8096]

Serves taskql as ``bench.subscriptions`` does (same data folder, production settings, one worker), but
through ``python -m bench.ws_memory serve``, which can swap uvicorn's WebSocket implementation (``--ws``:
taskql's default, the websockets sans-I/O one with a 1001 on shutdown; uvicorn's legacy websockets one; or
wsproto, when installed) and, with ``--trace``, runs tracemalloc (25 frames) from the start and writes a
snapshot when it gets SIGUSR1. The client opens SUBSCRIBERS live subscriptions (confirmed by a first
event) and prints the RSS per idle subscription; with ``--trace``, also the Python allocations that the
subscriptions added, per subscription, by line and by traceback. tracemalloc's own bookkeeping inflates
RSS: compare implementations' RSS without ``--trace``.

Not a test: a profiling aid for the figures of ``bench.subscriptions``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import secrets
import signal
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from bench.servers import ROOT, environment, prepare, refuse_busy_port, running
from bench.subscriptions import (
    TOKEN_TTL_SECONDS,
    close_all,
    confirm_live,
    drive,
    log_in,
    open_all,
    settled_rss,
    warm_up,
)

HOST = "127.0.0.1"


# The server ------------------------------------------------------------------------------------------


def protocol(name: str) -> type[Any]:
    if name == "sansio":
        from taskql.http.protocols import BoundedWebSocketProtocol

        return BoundedWebSocketProtocol
    if name == "websockets":
        from uvicorn.protocols.websockets.websockets_impl import WebSocketProtocol

        return WebSocketProtocol
    from uvicorn.protocols.websockets.wsproto_impl import WSProtocol

    return WSProtocol


def collect_garbage(folder: Path, number: int) -> None:
    """A full collection, keeping what it found (DEBUG_SAVEALL) to count it by type, into a JSON file."""
    generations = [len(gc.get_objects(generation)) for generation in range(3)]
    gc.set_debug(gc.DEBUG_SAVEALL)
    started = time.perf_counter()
    try:
        collected = gc.collect()
        seconds = time.perf_counter() - started
        types = Counter(type(item).__qualname__ for item in gc.garbage)
    finally:
        gc.garbage.clear()
        gc.set_debug(0)
    report = {"collected": collected, "seconds": seconds, "generations": generations}
    report["types"] = types.most_common(25)
    path = folder / f"garbage-{number}.json"
    path.with_suffix(".partial").write_text(json.dumps(report))
    path.with_suffix(".partial").rename(path)


def serve(port: int, ws: str, folder: Path, trace: bool) -> None:
    """``python -m taskql serve --no-migrate`` with another WebSocket protocol, and tracemalloc; SIGUSR1
    writes a tracemalloc snapshot into ``folder``, SIGUSR2 a full collection's findings."""
    import taskql.http.protocols
    from taskql.cli import main as cli

    taken = iter(range(1000))
    collections = iter(range(1000))
    if trace:
        tracemalloc.start(25)

        def snapshot(*_: object) -> None:
            path = folder / f"{next(taken)}.snapshot"
            tracemalloc.take_snapshot().dump(str(path.with_suffix(".partial")))
            path.with_suffix(".partial").rename(path)

        signal.signal(signal.SIGUSR1, snapshot)
    signal.signal(signal.SIGUSR2, lambda *_: collect_garbage(folder, next(collections)))
    # What `serve` imports. Not counted per address: the benchmark's environment sets no bound.
    taskql.http.protocols.BoundedWebSocketProtocol = protocol(ws)  # type: ignore[misc]
    cli.serve(host=HOST, port=port, workers=1, migrate=False)


# The client ------------------------------------------------------------------------------------------


async def garbage(pid: int, folder: Path, number: int) -> dict[str, Any]:
    os.kill(pid, signal.SIGUSR2)
    path = folder / f"garbage-{number}.json"
    await wait_for_file(path)
    report: dict[str, Any] = json.loads(path.read_text())
    return report


async def take_snapshot(pid: int, folder: Path, number: int) -> tracemalloc.Snapshot:
    os.kill(pid, signal.SIGUSR1)
    path = folder / f"{number}.snapshot"
    await wait_for_file(path)
    return tracemalloc.Snapshot.load(str(path))


async def wait_for_file(path: Path) -> None:
    deadline = time.monotonic() + 300
    while not await asyncio.to_thread(path.exists):
        if time.monotonic() > deadline:
            raise SystemExit(f"the server wrote no {path} within 300 s")
        await asyncio.sleep(0.2)


STDLIB = str(Path(os.__file__).parent)


def is_stdlib(filename: str) -> bool:
    return filename.startswith((STDLIB, "<")) and "site-packages" not in filename


def short(filename: str) -> str:
    return filename.replace(str(ROOT) + "/", "").replace(".venv/lib/python3.11/site-packages/", "")


def show(
    before: tracemalloc.Snapshot,
    after: tracemalloc.Snapshot,
    count: int,
    top: int,
    unit: str = "subscription",
) -> None:
    noise = [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, "<frozen *>")]
    before, after = before.filter_traces(noise), after.filter_traces(noise)
    total = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    print(f"\nPython allocations added: {total / count:,.0f} bytes per {unit} (tracemalloc)")
    for key in ("filename", "lineno"):
        print(f"\nby {key}: bytes and blocks per {unit}")
        for stat in after.compare_to(before, key)[:top]:
            frame = stat.traceback[0]
            where = f"{short(frame.filename)}:{frame.lineno}"
            if key == "filename":
                where = short(frame.filename)
            print(f"{stat.size_diff / count:>10,.0f} B {stat.count_diff / count:>7.1f}  {where}")
    print(f"\nby caller: the innermost frame outside the standard library (bytes, blocks per {unit})")
    callers: dict[str, list[float]] = {}
    for stat in after.compare_to(before, "traceback"):
        frames = [frame for frame in stat.traceback if not is_stdlib(frame.filename)] or list(stat.traceback)
        where = f"{short(frames[-1].filename)}:{frames[-1].lineno}"  # tracebacks are outermost first
        figures = callers.setdefault(where, [0.0, 0.0])
        figures[0] += stat.size_diff / count
        figures[1] += stat.count_diff / count
    for where, (size, blocks) in sorted(callers.items(), key=lambda item: -item[1][0])[:top]:
        print(f"{size:>10,.0f} B {blocks:>7.1f}  {where}")
    print("\nby traceback (the largest, innermost frames first)")
    for stat in after.compare_to(before, "traceback")[: min(top, 12)]:
        print(f"\n{stat.size_diff / count:>10,.0f} B {stat.count_diff / count:>7.1f} blocks per {unit}")
        for frame in list(stat.traceback)[::-1][:10]:
            print(f"      {short(frame.filename)}:{frame.lineno}")


async def measure(args: argparse.Namespace, pid: int, folder: Path) -> None:
    base = f"http://{HOST}:{args.port}"
    url = f"ws://{HOST}:{args.port}/graphql"
    run = secrets.token_hex(4)
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        users = await log_in(client, args.users)
        await warm_up(client, url, users, run)
        rss_0 = await settled_rss(pid, 3)
        before = await take_snapshot(pid, folder, 0) if args.trace else None
        half = args.subscribers // 2
        subscribers = await open_all(url, users, half, 200, deflate=args.deflate)
        try:
            await confirm_live(client, subscribers, run)
            rss_half = await settled_rss(pid, 3)
            more = await open_all(url, users, args.subscribers - half, 200, deflate=args.deflate)
            subscribers += more
            await confirm_live(client, more, f"{run}-2")
            rss_n = await settled_rss(pid, 3)
            after = await take_snapshot(pid, folder, 1) if args.trace else None
            if args.garbage:
                found = await garbage(pid, folder, 0)
                rss_collected = await settled_rss(pid, 2)
            if args.mutations:
                await drive(client, users, args.mutation_rate, args.mutations / args.mutation_rate, run)
                rss_m = await settled_rss(pid, 3)
                mutated = await take_snapshot(pid, folder, 2) if args.trace else None
        finally:
            await close_all(subscribers)
    per = (rss_n - rss_0) / args.subscribers
    print(
        f"ws={args.ws}{' deflate' if args.deflate else ''}{' (tracemalloc on)' if args.trace else ''}: ",
        end="",
    )
    print(f"RSS {rss_0 / 2**20:.1f} -> {rss_n / 2**20:.1f} MiB, {per / 1000:.1f} kB per idle subscription")
    marginal = (rss_n - rss_half) / (args.subscribers - half)
    print(
        f"  the first half {(rss_half - rss_0) / half / 1000:.1f} kB each, "
        f"the second {marginal / 1000:.1f} kB each"
    )
    if args.garbage:
        print(
            f"a full collection then found {found['collected']} unreachable objects "
            f"({found['collected'] / args.subscribers:.1f} per subscription) "
            f"in {found['seconds'] * 1000:.0f} ms "
            f"(objects per generation before: {found['generations']}); RSS after it "
            f"{rss_collected / 2**20:.1f} MiB"
        )
        for name, number in found["types"][:15]:
            print(f"  {number:>8}  {name}")
    if before is not None and after is not None:
        show(before, after, args.subscribers, args.top)
    if args.mutations:
        print(
            f"\n{args.mutations} mutations at {args.mutation_rate:g}/s: RSS {rss_n / 2**20:.1f} -> "
            f"{rss_m / 2**20:.1f} MiB, {(rss_m - rss_n) / args.mutations / 1000:.1f} kB per mutation"
        )
        if after is not None and mutated is not None:
            show(after, mutated, args.mutations, args.top, unit="mutation")


def main() -> None:
    if sys.argv[1:2] == ["serve"]:
        parser = argparse.ArgumentParser()
        parser.add_argument("serve")
        parser.add_argument("--port", type=int, required=True)
        parser.add_argument("--ws", default="sansio")
        parser.add_argument("--folder", type=Path, required=True)
        parser.add_argument("--trace", action="store_true")
        served = parser.parse_args()
        serve(served.port, served.ws, served.folder, served.trace)
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--subscribers", type=int, default=500)
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--ws", choices=["sansio", "websockets", "wsproto"], default="sansio")
    parser.add_argument("--deflate", action="store_true", help="Negotiate permessage-deflate.")
    parser.add_argument("--trace", action="store_true", help="tracemalloc in the server.")
    parser.add_argument("--garbage", action="store_true", help="Then count what a full collection finds.")
    parser.add_argument("--mutations", type=int, default=0, help="Then drive this many, and compare.")
    parser.add_argument("--mutation-rate", type=float, default=40, help="Mutations per second.")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--keep", type=Path, help="Keep the snapshots in this folder.")
    parser.add_argument("--data-dir", type=Path, default=ROOT / ".data" / "bench-subs")
    parser.add_argument("--port", type=int, default=8096)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    args.data_dir = args.data_dir.resolve()
    refuse_busy_port(HOST, args.port)
    env = environment(
        args.data_dir,
        ENVIRONMENT="production",
        JWT_SECRET=secrets.token_urlsafe(48),
        ACCESS_TOKEN_TTL_SECONDS=str(TOKEN_TTL_SECONDS),
    )
    prepare(env, args.data_dir, 1000, 10_000)
    with tempfile.TemporaryDirectory(prefix="ws_memory-") as scratch:
        folder = args.keep or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        serve_command = [sys.executable, "-m", "bench.ws_memory", "serve", "--port", str(args.port)]
        serve_command += ["--ws", args.ws, "--folder", str(folder), *(["--trace"] if args.trace else [])]
        log = (args.data_dir / "ws_memory-taskql.log").open("wb")
        with (
            log,
            running(serve_command, env=env, ready_url=f"http://{HOST}:{args.port}/readyz", log=log) as server,
        ):
            import uvloop

            uvloop.run(measure(args, server.pid, folder))


if __name__ == "__main__":
    main()
