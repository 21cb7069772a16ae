"""Scale-out shown on one machine: `python -m bench.scale_out` with three taskql processes behind nginx,
on the suite's PostgreSQL and Redis, for a short run; its own checks (every event delivered exactly once to
subscribers on every process and through the balancer, no stale read on any process) must all pass."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.nginx import NGINX
from tests.processes import ROOT, environment
from tests.services import Services


def test_three_processes_behind_a_balancer_deliver_every_event_once_and_serve_no_stale_read(
    database: Services, tmp_path: Path
) -> None:
    # nginx wherever it is installed, and always in CI (which installs it): the per-request round robin is
    # what puts a read after a write on another process.
    balancer = "nginx" if NGINX or os.environ.get("CI") else "tcp"
    options = ["--processes", "3", "--duration", "2", "--users", "6", "--balancer", balancer]
    result = subprocess.run(
        [sys.executable, "-m", "bench.scale_out", *options],
        env=environment(
            DATABASE_URL=database.database_url, REDIS_URL=database.redis_url, TMPDIR=str(tmp_path)
        ),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    line = json.loads(result.stdout.strip().splitlines()[-1])
    assert line["ok"], line["checks"]
    assert [row["processes"] for row in line["by_processes"]] == [1, 2, 3]
    assert line["subscribers"] == 6 * 4  # on each of the 3 processes, and one through the balancer
    assert line["subscribers_exact"] == line["subscribers"]
    assert line["events_delivered"] == line["events_expected"] > 0
    assert line["stale_reads"] == 0
    if balancer == "nginx":
        assert line["checks"]["reads_after_writes_on_other_processes"]
        assert len(line["by_processes"][-1]["served_by"]) == 3
