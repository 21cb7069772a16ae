"""The README's curl session works, as written, against a live server."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from tests.processes import ROOT, TEST_SECRET, environment, free_port, start_server, stop, wait_ready
from tests.services import Services


def curl_session() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Try it with curl", 1)[1]
    match = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert match, "the README's curl section has a sh block"
    return match.group(1)


def test_the_readme_curl_session_runs_from_register_to_logout(database: Services, tmp_path: Path) -> None:
    env = environment(
        DATABASE_URL=database.database_url, REDIS_URL=database.redis_url, JWT_SECRET=TEST_SECRET
    )
    port = free_port()
    server = start_server(env, tmp_path, port)
    try:
        wait_ready(server, port)
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", curl_session()],
            env={**env, "API": f"http://127.0.0.1:{port}/graphql"},
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        stop(server)
    assert result.returncode == 0, result.stdout + result.stderr
    answers = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    register, tasks, update, stats, logout, me = answers
    assert register["data"]["register"]["user"]["email"] == "ada@example.com"
    assert [edge["node"]["title"] for edge in tasks["data"]["tasks"]["edges"]] == ["Write the report"]
    assert update["data"]["updateTask"]["status"] == "DONE"
    assert stats["data"]["taskStats"]["completionRate"] == 1.0
    assert logout == {"data": {"logout": True}}
    assert me["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
