"""Debian's nginx for the tests: check a configuration (``nginx -t``) or run one in a folder of its own.

Without nginx the tests that need it are skipped locally; with ``CI`` set they run, and fail, saying how to
install it (``.ci/run`` installs it)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

NGINX = shutil.which("nginx") or next(
    (path for path in ("/usr/sbin/nginx", "/sbin/nginx") if Path(path).exists()), None
)

needs_nginx = pytest.mark.skipif(
    NGINX is None and not os.environ.get("CI"),
    reason="needs Debian's nginx (apt-get install nginx-light); with CI set these tests always run",
)


def nginx() -> str:
    assert NGINX is not None, "nginx is required in CI: apt-get install nginx-light (.ci/run does)"
    return NGINX


def _arguments(config: Path) -> list[str]:
    folder = config.parent
    # Its own prefix, error log and pid file: nothing of the machine's nginx is touched.
    return [nginx(), "-p", str(folder), "-c", str(config), "-e", str(folder / "error.log")]


def check(config: Path) -> subprocess.CompletedProcess[str]:
    """``nginx -t`` on ``config``: parses it, loads its modules, resolves its upstreams."""
    return subprocess.run(
        [*_arguments(config), "-t", "-g", f"pid {config.parent / 'nginx.pid'};"],
        capture_output=True,
        text=True,
        timeout=30,
    )


@contextlib.contextmanager
def running(config: Path, port: int) -> Iterator[subprocess.Popen[str]]:
    """nginx in the foreground with ``config``, once it accepts connections on ``port``."""
    process = subprocess.Popen(
        [*_arguments(config), "-g", f"daemon off; pid {config.parent / 'nginx.pid'};"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            if process.poll() is not None:
                output = process.stdout.read() if process.stdout else ""
                raise RuntimeError(f"nginx exited with {process.returncode}: {output}")
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if time.monotonic() > deadline:
                raise TimeoutError(f"nginx did not listen on {port}")
            time.sleep(0.05)
        yield process
    finally:
        process.send_signal(signal.SIGQUIT)  # graceful: finish what is in flight
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
