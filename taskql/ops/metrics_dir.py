"""The folder where ``serve``'s workers keep their metrics (prometheus-client's multiprocess mode), and the
metrics port that reads it.

Apart from ``taskql.ops.metrics``: ``prepare`` must run before anything imports prometheus-client (the library
decides at import whether samples go to files).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

logger = logging.getLogger("taskql.ops.metrics")
MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"
PREFIX = "taskql-metrics-"


def prepare() -> Path:
    """The folder (``PROMETHEUS_MULTIPROC_DIR`` if set, else a new temporary one), emptied, and exported to
    the workers: samples of an earlier run must not add up with this one's."""
    given = os.environ.get(MULTIPROC_DIR)
    folder = Path(given) if given else Path(tempfile.mkdtemp(prefix=PREFIX))
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):
        stale.unlink()
    os.environ[MULTIPROC_DIR] = str(folder)
    return folder


def remove(folder: Path) -> None:
    """After ``serve``: a folder it made goes; one it was given stays (emptied at the next start)."""
    if folder.name.startswith(PREFIX) and folder.parent == Path(tempfile.gettempdir()):
        shutil.rmtree(folder, ignore_errors=True)


def serve_port(host: str, port: int) -> None:
    """Serve every worker's metrics on their own port (a thread of the ``serve`` process), without a token:
    expose that port to the scraper only."""
    from prometheus_client import CollectorRegistry, multiprocess, start_http_server

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    start_http_server(port, addr=host, registry=registry)
    logger.info("metrics on http://%s:%d/metrics", host, port)


def supervising() -> None:
    """The ``serve`` process only supervises its workers: the live gauges it defined by importing taskql's
    modules (all zero) must not count as a live process's (a zero "Redis available" would be the minimum)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
