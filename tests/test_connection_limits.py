"""Idle and slow connections against a real ``taskql serve``: a request head must arrive within
REQUEST_HEAD_TIMEOUT_SECONDS, an idle keep-alive connection ends after ``--timeout-keep-alive``, one client
address holds at most MAX_CONNECTIONS_PER_CLIENT connections, and the process raises its open files limit.

The crowded server may open 1,000 files (soft and hard limit: raising gains nothing), so that 1,000 idle
connections would take every descriptor it has (with 1,024 they take all but the few it uses itself) and
only the per-client bound keeps the others answered. The strict one starts with a soft limit of 512. The
other client connects from 127.0.0.2 (every 127/8 address is loopback on Linux)."""

from __future__ import annotations

import contextlib
import re
import resource
import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

from tests.processes import TEST_SECRET, TaskqlProcess, environment
from tests.services import Services
from tests.ws_client import TRANSPORT_WS

IDLE_CONNECTIONS = 1000
PER_CLIENT = 256
HEAD_TIMEOUT = 2.0
KEEP_ALIVE = 3.0  # not the head timeout: each test sees which of the two closed its connection
SLACK = 1.5  # the timers' own delay, a loaded machine's scheduling, the test's polling
PROMPT = 2.0  # "answered promptly": the whole round trip of the other client's request
CROWDED_LIMIT = IDLE_CONNECTIONS  # the crowded server's soft and hard limit of open files
STRICT_START_LIMIT = 512  # the strict one's soft limit, under the hard limit it inherits


def ensure_own_open_files(needed: int) -> None:
    """The test itself holds the idle connections: raise its soft limit (CI's is often 1,024)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            pytest.fail(f"the test needs {needed} open files; the hard limit is {hard} (ulimit -Hn)")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def server(
    folder: Path, database: Services, open_files: tuple[int, int], *options: str, **settings: str
) -> Iterator[TaskqlProcess]:
    env = environment(
        DATABASE_URL=database.database_url,
        REDIS_URL=database.redis_url,
        JWT_SECRET=TEST_SECRET,
        LOG_LEVEL="INFO",
        **settings,
    )
    process = TaskqlProcess(env, folder, "taskql", *options, open_files=open_files)
    process.start()
    try:
        yield process
    finally:
        process.stop()
    assert "Traceback" not in process.output(), process.output()


@pytest.fixture(scope="module")
def crowded(database: Services, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TaskqlProcess]:
    """1,000 open files and no more; a head timeout long enough that idle connections stay for the test."""
    yield from server(
        tmp_path_factory.mktemp("crowded"),
        database,
        (CROWDED_LIMIT, CROWDED_LIMIT),
        MAX_CONNECTIONS_PER_CLIENT=str(PER_CLIENT),
        REQUEST_HEAD_TIMEOUT_SECONDS="60",
    )


@pytest.fixture(scope="module")
def strict(database: Services, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TaskqlProcess]:
    """Short timeouts; a soft limit of 512 under the test's own hard limit; a bound of 4 per client."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    yield from server(
        tmp_path_factory.mktemp("strict"),
        database,
        (STRICT_START_LIMIT, hard),
        "--timeout-keep-alive",
        str(int(KEEP_ALIVE)),
        MAX_CONNECTIONS_PER_CLIENT="4",
        REQUEST_HEAD_TIMEOUT_SECONDS=str(HEAD_TIMEOUT),
    )


def ended_by_server(sock: socket.socket) -> bool:
    """Whether the server closed this connection, on which it sent nothing."""
    try:
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True


def wait_closed(sockets: list[socket.socket], count: int, timeout: float) -> list[socket.socket]:
    """Poll until ``count`` of ``sockets`` are closed by the server (or ``timeout``); the closed ones."""
    poller = select.poll()  # select() cannot watch descriptors above 1,023
    by_fd = {sock.fileno(): sock for sock in sockets}
    for fd in by_fd:
        poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
    closed: list[socket.socket] = []
    deadline = time.monotonic() + timeout
    while len(closed) < count and (remaining := deadline - time.monotonic()) > 0:
        for fd, _ in poller.poll(remaining * 1000):
            if ended_by_server(by_fd[fd]):
                closed.append(by_fd[fd])
                poller.unregister(fd)
    return closed


def read_until_closed(sock: socket.socket, timeout: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and when it did (monotonic)."""
    sock.settimeout(timeout)
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received, time.monotonic()


def get(port: int, path: str = "/healthz", *, source: str = "127.0.0.1") -> httpx.Response:
    transport = httpx.HTTPTransport(local_address=source)
    with httpx.Client(transport=transport, timeout=10) as client:
        return client.get(f"http://127.0.0.1:{port}{path}")


def answered_again(port: int, timeout: float) -> bool:
    """Whether 127.0.0.1 gets answered within ``timeout`` (its slots are given back as its sockets close)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.TransportError):
            if get(port).status_code == 200:
                return True
        time.sleep(0.05)
    return False


def open_idle(port: int, count: int) -> list[socket.socket]:
    return [socket.create_connection(("127.0.0.1", port)) for _ in range(count)]


def test_a_thousand_idle_connections_from_one_address_leave_another_address_answered_promptly(
    crowded: TaskqlProcess,
) -> None:
    ensure_own_open_files(IDLE_CONNECTIONS + 200)
    idle = open_idle(crowded.port, IDLE_CONNECTIONS)
    try:
        started = time.monotonic()
        response = get(crowded.port, source="127.0.0.2")
        elapsed = time.monotonic() - started

        assert response.status_code == 200, response.text
        assert elapsed < PROMPT, f"answered after {elapsed:.2f} s"
        closed = wait_closed(idle, IDLE_CONNECTIONS - PER_CLIENT, timeout=5)
        assert len(closed) == IDLE_CONNECTIONS - PER_CLIENT
        assert not any(ended_by_server(sock) for sock in idle if sock not in closed), (
            "only the excess is closed"
        )
    finally:
        for sock in idle:
            sock.close()
    assert answered_again(crowded.port, timeout=5), "the address's slots came back when its sockets closed"
    assert "refused a connection from 127.0.0.1" in crowded.output()


def test_connections_past_the_bound_are_closed_at_once_and_websockets_count(strict: TaskqlProcess) -> None:
    url = f"ws://127.0.0.1:{strict.port}/graphql"
    with contextlib.ExitStack() as websockets:
        for _ in range(4):  # accepted, awaiting connection_init (10 s): each holds a slot meanwhile
            websockets.enter_context(connect(url, subprotocols=[TRANSPORT_WS], compression=None))  # type: ignore[list-item]
        with socket.create_connection(("127.0.0.1", strict.port)) as extra:
            started = time.monotonic()
            data, closed_at = read_until_closed(extra, timeout=5)

        assert data == b""
        assert closed_at - started < 1.0
        assert get(strict.port, source="127.0.0.2").status_code == 200
    assert answered_again(strict.port, timeout=5), "closed WebSockets gave their slots back"


def test_a_connection_that_sends_nothing_is_closed_at_the_head_timeout(strict: TaskqlProcess) -> None:
    sock = socket.create_connection(("127.0.0.1", strict.port))
    started = time.monotonic()
    with sock:
        data, closed_at = read_until_closed(sock, timeout=HEAD_TIMEOUT + 10)

    assert data == b""
    assert HEAD_TIMEOUT - 0.1 <= closed_at - started <= HEAD_TIMEOUT + SLACK


def trickle(sock: socket.socket, data: bytes, interval: float) -> None:
    """Send ``data`` a byte every ``interval`` (a slowloris) until the server closes the connection."""
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN)
    for byte in data:
        if poller.poll(interval * 1000):  # the server spoke (and is closing): stop sending
            return
        sock.sendall(bytes([byte]))
    raise AssertionError("the whole head was sent: the server never cut it off")


def test_a_request_head_trickled_a_byte_at_a_time_is_cut_off_with_408_at_the_head_timeout(
    strict: TaskqlProcess,
) -> None:
    sock = socket.create_connection(("127.0.0.1", strict.port))
    started = time.monotonic()
    with sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        trickle(sock, b"X-Slow: " + b"a" * 60 + b"\r\n\r\n", interval=0.1)  # 7 s in all
        data, closed_at = read_until_closed(sock, timeout=10)

    assert data.startswith(b"HTTP/1.1 408 "), data
    assert HEAD_TIMEOUT - 0.1 <= closed_at - started <= HEAD_TIMEOUT + SLACK


def keep_alive_request(sock: socket.socket) -> bytes:
    """One GET /healthz on ``sock``; its whole response (read by its content-length)."""
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    sock.settimeout(10)
    response = b""
    while b"\r\n\r\n" not in response:
        response += sock.recv(65536)
    head, _, body = response.partition(b"\r\n\r\n")
    match = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    assert match, head
    while len(body) < int(match[1]):
        body += sock.recv(65536)
    return head


def test_an_idle_keep_alive_connection_is_closed_after_the_keep_alive_timeout(strict: TaskqlProcess) -> None:
    sock = socket.create_connection(("127.0.0.1", strict.port))
    with sock:
        assert keep_alive_request(sock).startswith(b"HTTP/1.1 200 ")
        answered = time.monotonic()
        data, closed_at = read_until_closed(sock, timeout=KEEP_ALIVE + 10)

    assert data == b""
    assert KEEP_ALIVE - 0.1 <= closed_at - answered <= KEEP_ALIVE + SLACK


def test_half_a_head_after_a_keep_alive_response_is_cut_off_at_the_head_timeout(
    strict: TaskqlProcess,
) -> None:
    sock = socket.create_connection(("127.0.0.1", strict.port))
    with sock:
        assert keep_alive_request(sock).startswith(b"HTTP/1.1 200 ")
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHo")  # uvicorn alone stops its keep-alive timer here
        started = time.monotonic()
        data, closed_at = read_until_closed(sock, timeout=HEAD_TIMEOUT + 10)

    assert data.startswith(b"HTTP/1.1 408 "), data
    assert HEAD_TIMEOUT - 0.1 <= closed_at - started <= HEAD_TIMEOUT + SLACK


def test_serve_raises_its_open_files_soft_limit_to_the_hard_limit_and_logs_it(strict: TaskqlProcess) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)  # the server's hard limit: the test's own
    limits = Path(f"/proc/{strict.pid}/limits").read_text()
    match = re.search(r"(?m)^Max open files\s+(\d+)\s+(\d+)", limits)
    assert match, limits

    assert (int(match[1]), int(match[2])) == (hard, hard)
    assert int(match[1]) > STRICT_START_LIMIT
    assert f"open files limit: {hard} (was {STRICT_START_LIMIT}; hard limit {hard})" in strict.output()
