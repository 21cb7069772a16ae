"""Hostile inputs against a live server: what each one gets back, as a markdown table.

    python -m bench.hostile_inputs [--url http://127.0.0.1:8000/graphql] [--data-dir .data/hostile]
                                   [--port 8097]

Without ``--url`` it serves taskql itself (``python -m taskql serve``, the development profile, embedded
PostgreSQL and Redis in DATA_DIR, BODY_IDLE_TIMEOUT_SECONDS=2 so that the stalled body does not take 10 s)
and reads the server's log afterwards: any traceback in it is printed and fails the run.

Every request goes over a raw socket (``Connection: close``), so that what is sent is exactly what is
written here: chunked bodies, a Content-Length that lies, invalid UTF-8. The GraphQL-level inputs are sent
twice, once accepting ``application/json`` and once ``application/graphql-response+json``: the spec gives
them different status codes. Each row: the input, the status and ``extensions.code`` of the first error in
each media type, and the time to the answer. Exits non-zero when any answer is a 5xx, has no
``extensions.code`` where a GraphQL response was expected, or never came.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import secrets
import select
import socket
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.servers import ROOT, environment, refuse_busy_port, running

JSON_ACCEPT = "application/json"
GRAPHQL_RESPONSE = "application/graphql-response+json"
PASSWORD = "hostile inputs passphrase"  # noqa: S105  (a throwaway account on a throwaway server)
ME = "query Me { me { id } }"


@dataclass(frozen=True)
class Answer:
    status: int | None  # None: no answer (the connection closed or the time ran out first)
    content_type: str
    body: bytes
    seconds: float

    @property
    def code(self) -> str:
        try:
            errors = json.loads(self.body).get("errors") or []
        except (ValueError, AttributeError):
            return "-"
        if not errors:
            return "(none: data)"
        return str((errors[0].get("extensions") or {}).get("code", "(no code)"))


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    path: str
    token: str


def exchange(target: Target, head: bytes, body: Iterator[bytes] | bytes = b"", timeout: float = 10) -> Answer:
    """Send ``head`` then ``body`` (chunks, sent until the server answers) and read the answer."""
    started = time.perf_counter()
    chunks = iter([body]) if isinstance(body, bytes) else body
    received = bytearray()
    with socket.create_connection((target.host, target.port), timeout=timeout) as sock:
        sock.sendall(head)
        sock.setblocking(False)
        pending = b""
        deadline = started + timeout
        while time.perf_counter() < deadline:
            if not pending:
                pending = next(chunks, b"")
            readable, writable, _ = select.select([sock], [sock] if pending else [], [], 0.05)
            if readable:
                try:
                    data = sock.recv(65536)
                except (ConnectionResetError, BlockingIOError):
                    break
                if not data:
                    break
                received += data
                pending = b""  # the server answered: stop sending
                chunks = iter(())
            elif writable and pending:
                try:
                    pending = pending[sock.send(pending) :]
                except (BrokenPipeError, ConnectionResetError, BlockingIOError):
                    pending = b""
                    chunks = iter(())
    seconds = time.perf_counter() - started
    head_end = received.find(b"\r\n\r\n")
    if head_end < 0:
        return Answer(None, "", bytes(received), seconds)
    lines = bytes(received[:head_end]).decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
    return Answer(
        int(lines[0].split()[1]), headers.get("content-type", ""), bytes(received[head_end + 4 :]), seconds
    )


def request_head(
    target: Target,
    method: str = "POST",
    *,
    query: str = "",
    accept: str | None = JSON_ACCEPT,
    content_type: str | None = "application/json",
    length: int | None = None,
    chunked: bool = False,
    token: bool = False,
) -> bytes:
    lines = [
        f"{method} {target.path}{'?' + query if query else ''} HTTP/1.1",
        f"host: {target.host}:{target.port}",
    ]
    lines.append("connection: close")
    if accept is not None:
        lines.append(f"accept: {accept}")
    if content_type is not None:
        lines.append(f"content-type: {content_type}")
    if length is not None:
        lines.append(f"content-length: {length}")
    if chunked:
        lines.append("transfer-encoding: chunked")
    if token:
        lines.append(f"authorization: Bearer {target.token}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def post(
    target: Target,
    content: bytes,
    accept: str,
    *,
    content_type: str | None = "application/json",
    token: bool = False,
) -> Answer:
    head = request_head(target, accept=accept, content_type=content_type, length=len(content), token=token)
    return exchange(target, head, content)


def get(target: Target, params: dict[str, str], accept: str = JSON_ACCEPT) -> Answer:
    return exchange(
        target,
        request_head(target, "GET", query=urllib.parse.urlencode(params), accept=accept, content_type=None),
    )


def chunked(body: bytes, size: int = 65536) -> Iterator[bytes]:
    for start in range(0, len(body), size):
        piece = body[start : start + size]
        yield f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    yield b"0\r\n\r\n"


def stalled(first: bytes) -> Iterator[bytes]:
    yield first
    while True:  # then nothing more, for ever
        time.sleep(0.05)
        yield b""


def nested(depth: int) -> object:
    value: object = "x"
    for _ in range(depth):
        value = {"a": value}
    return value


MB = 1 << 20
Send = Callable[[Target, str], Answer]  # (target, accept) → answer


@dataclass(frozen=True)
class Case:
    name: str
    send: Send
    request_error: bool = False  # a GraphQL request error: 200 in application/json, 400 in the other
    uvicorn: bool = False  # refused by uvicorn's HTTP parser, before taskql sees it (plain text, no code)


def body(payload: object) -> bytes:
    return json.dumps(payload).encode()


def task_page(first: str) -> bytes:
    return body({"query": f"{{ tasks(first: {first}) {{ totalCount }} }}"})


DEEP_QUERY = "{ me { " + "tasks(first: 1) { edges { node { owner { " * 12 + "id" + " } } } }" * 12 + " } }"
ALIASES = "{ " + " ".join(f"a{i}: me {{ id }}" for i in range(1000)) + " }"
CREATE_TASK = "mutation($t: String!) { createTask(input: {title: $t}) { id } }"
WRONG_TYPE = "query($first: Int) { tasks(first: $first) { totalCount } }"
LARGE = b'{"query": "' + b"a" * (2 * MB) + b'"}'
HASH = {"persistedQuery": {"version": 1, "sha256Hash": "1" * 64}}

CASES = [
    Case("body of 2 MiB (Content-Length)", lambda t, a: post(t, LARGE, a)),
    Case(
        "body of 2 MiB, chunked (no Content-Length)",
        lambda t, a: exchange(t, request_head(t, accept=a, chunked=True), chunked(LARGE)),
    ),
    Case(
        "Content-Length: 26 followed by 2 MiB more",
        lambda t, a: exchange(
            t, request_head(t, accept=a, length=26), body({"query": ME})[:26] + b" " * 2 * MB
        ),
    ),
    Case(
        "body that stalls after 10 of its 100 bytes",
        lambda t, a: exchange(t, request_head(t, accept=a, length=100), stalled(b'{"query": '), timeout=15),
    ),
    Case(
        "query string of 100 KiB (GET)", lambda t, a: get(t, {"query": ME + " " * 100_000}, a), uvicorn=True
    ),
    Case("JSON nested 100,000 deep", lambda t, a: post(t, b"[" * 100_000 + b"]" * 100_000, a)),
    Case(
        "variables of 340,000 empty arrays (1 MiB)",
        lambda t, a: post(
            t, b'{"query": "{ __typename }", "variables": {"a": [' + b"[]," * 340_000 + b"[]]}}", a
        ),
    ),
    Case("variables nested 40 deep", lambda t, a: post(t, body({"query": ME, "variables": nested(40)}), a)),
    Case(
        "variables of 100 KiB",
        lambda t, a: post(t, body({"query": ME, "variables": {"x": "v" * 100_000}}), a),
    ),
    Case("query nested 50 deep", lambda t, a: post(t, body({"query": DEEP_QUERY}), a), request_error=True),
    Case("1,000 aliases", lambda t, a: post(t, body({"query": ALIASES}), a), request_error=True),
    Case(
        "5,000 @include directives on one field",
        lambda t, a: post(t, body({"query": "{ me " + "@include(if: true) " * 5000 + "{ id } }"}), a),
        request_error=True,
    ),
    Case(
        "20,000 repeated fields (me { id id id ... })",
        lambda t, a: post(t, body({"query": "{ me { " + "id " * 20_000 + "} }"}), a),
        request_error=True,
    ),
    Case(
        "fragment cycle",
        lambda t, a: post(
            t, body({"query": "{ me { ...A } } fragment A on User { ...B } fragment B on User { ...A }"}), a
        ),
        request_error=True,
    ),
    Case("tasks(first: 1000000)", lambda t, a: post(t, task_page("1000000"), a, token=True)),
    Case(
        "tasks(first: 99999999999), beyond Int",
        lambda t, a: post(t, task_page("99999999999"), a, token=True),
        request_error=True,
    ),
    Case(
        "integer of 5,000 digits",
        lambda t, a: post(t, b'{"query": "{ me { id } }", "variables": {"n": ' + b"9" * 5000 + b"}}", a),
    ),
    Case("NaN in variables", lambda t, a: post(t, b'{"query": "{ me { id } }", "variables": {"n": NaN}}', a)),
    Case("raw NUL byte in the body", lambda t, a: post(t, b'{"query": "{ me { id } }\x00"}', a)),
    Case(
        "escaped NUL (\\u0000) in the query",
        lambda t, a: post(t, b'{"query": "{ me { id } }\\u0000"}', a),
        request_error=True,
    ),
    Case(
        "escaped NUL in a task title",
        lambda t, a: post(t, body({"query": CREATE_TASK, "variables": {"t": "a\x00b"}}), a, token=True),
    ),
    Case(
        "invalid UTF-8 (\\xff) in the body",
        lambda t, a: post(t, b'{"query": "{ me { id } }", "x": "\xff"}', a),
    ),
    Case("lone surrogate escape (\\ud800)", lambda t, a: post(t, b'{"query": "{ me { id } } # \\ud800"}', a)),
    Case("Content-Type: text/plain", lambda t, a: post(t, body({"query": ME}), a, content_type="text/plain")),
    Case("no Content-Type", lambda t, a: post(t, body({"query": ME}), a, content_type=None)),
    Case(
        "Content-Type: multipart/form-data",
        lambda t, a: post(t, b"--x--", a, content_type="multipart/form-data; boundary=x"),
    ),
    Case(
        "Content-Type: application/json; charset=latin-1",
        lambda t, a: post(t, body({"query": ME}), a, content_type="application/json; charset=latin-1"),
    ),
    Case("Accept: text/csv (instead of the column's)", lambda t, a: post(t, body({"query": ME}), "text/csv")),
    Case(
        "APQ hash that is not hex",
        lambda t, a: post(t, body({"extensions": {"persistedQuery": {"version": 1, "sha256Hash": "zz"}}}), a),
    ),
    Case(
        "APQ hash that is not the query's", lambda t, a: post(t, body({"query": ME, "extensions": HASH}), a)
    ),
    Case("unknown APQ hash", lambda t, a: post(t, body({"extensions": HASH}), a), request_error=True),
    Case("JSON array (a batch)", lambda t, a: post(t, body([{"query": ME}, {"query": ME}]), a)),
    Case("body is a JSON string", lambda t, a: post(t, body("{ me { id } }"), a)),
    Case("no query", lambda t, a: post(t, body({"variables": {}}), a)),
    Case("query is a number", lambda t, a: post(t, body({"query": 42}), a)),
    Case("variables is a list", lambda t, a: post(t, body({"query": ME, "variables": [1]}), a)),
    Case("operationName is an object", lambda t, a: post(t, body({"query": ME, "operationName": {}}), a)),
    Case(
        "unknown operationName",
        lambda t, a: post(t, body({"query": ME, "operationName": "Other"}), a),
        request_error=True,
    ),
    Case(
        "two operations, no operationName",
        lambda t, a: post(t, body({"query": ME + " query Two { me { id } }"}), a),
        request_error=True,
    ),
    Case(
        'variable of the wrong type ($first: "ten")',
        lambda t, a: post(t, body({"query": WRONG_TYPE, "variables": {"first": "ten"}}), a, token=True),
        request_error=True,
    ),
    Case(
        "document that does not parse",
        lambda t, a: post(t, body({"query": "{ me { id "}), a),
        request_error=True,
    ),
    Case(
        "mutation over GET",
        lambda t, a: get(t, {"query": 'mutation { createTask(input: {title: "x"}) { id } }'}, a),
    ),
    Case(
        "subscription over POST",
        lambda t, a: post(t, body({"query": "subscription { taskEvents { cursor } }"}), a, token=True),
        request_error=True,
    ),
    Case("PUT /graphql", lambda t, a: exchange(t, request_head(t, "PUT", accept=a, length=2), b"{}")),
]


def register(url: str) -> str:
    email = f"hostile-{secrets.token_hex(6)}@example.com"
    document = "mutation($i: RegisterInput!) { register(input: $i) { accessToken } }"
    response = httpx.post(
        url,
        json={
            "query": document,
            "variables": {"i": {"email": email, "password": PASSWORD, "name": "Hostile"}},
        },
    )
    return str(response.json()["data"]["register"]["accessToken"])


def cell(answer: Answer) -> str:
    if answer.status is None:
        return "no answer"
    if answer.code == "-":
        text = answer.body[:40].decode(errors="replace")
        return f"{answer.status} ({answer.content_type or 'no body'}: {text})"
    return f"{answer.status} `{answer.code}`"


def run(url: str) -> list[str]:
    """The table's lines; raises SystemExit listing the answers that broke the rules."""
    parsed = urllib.parse.urlsplit(url)
    target = Target(
        parsed.hostname or "127.0.0.1", parsed.port or 80, parsed.path or "/graphql", register(url)
    )
    lines = [
        f"| # | input | {JSON_ACCEPT} | {GRAPHQL_RESPONSE} | time |",
        "| --- | --- | --- | --- | --- |",
    ]
    broken = []
    for number, case in enumerate(CASES, 1):
        answers = [case.send(target, JSON_ACCEPT), case.send(target, GRAPHQL_RESPONSE)]
        milliseconds = max(answer.seconds for answer in answers) * 1000
        lines.append(
            f"| {number} | {case.name} | {cell(answers[0])} | {cell(answers[1])} | {milliseconds:.0f} ms |"
        )
        for accept, answer in zip((JSON_ACCEPT, GRAPHQL_RESPONSE), answers, strict=True):
            if answer.status is None or answer.status >= 500:
                broken.append(f"{case.name} ({accept}): {answer.status} {answer.body[:300]!r}")
            elif answer.code in {"-", "(no code)"} and not (case.uvicorn and answer.status == 400):
                broken.append(f"{case.name} ({accept}): no extensions.code in {answer.body[:300]!r}")
        if case.request_error and [answer.status for answer in answers] != [200, 400]:
            broken.append(f"{case.name}: a request error is 200 in {JSON_ACCEPT}, 400 in {GRAPHQL_RESPONSE}")
    if broken:
        print("\n".join(lines))
        raise SystemExit("answers that break the rules:\n" + "\n".join(broken))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", help="a running server's /graphql (default: start one)")
    parser.add_argument("--data-dir", type=Path, default=ROOT / ".data" / "hostile")
    parser.add_argument("--port", type=int, default=8097)
    args = parser.parse_args()
    if args.url:
        print("\n".join(run(args.url)))
        return
    refuse_busy_port("127.0.0.1", args.port)
    args.data_dir.mkdir(parents=True, exist_ok=True)
    log_path = args.data_dir / "server.log"
    env = environment(args.data_dir, BODY_IDLE_TIMEOUT_SECONDS="2")
    command = [sys.executable, "-m", "taskql", "serve", "--port", str(args.port)]
    base = f"http://127.0.0.1:{args.port}"
    with log_path.open("wb") as log, running(command, env=env, ready_url=f"{base}/readyz", log=log):
        lines = run(f"{base}/graphql")
    print("\n".join(lines))
    server_log = log_path.read_text()
    if "Traceback" in server_log:
        raise SystemExit(f"the server logged a traceback:\n{server_log}")
    print(f"\nserver log ({log_path}): no traceback")


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
