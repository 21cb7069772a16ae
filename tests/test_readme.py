"""The README's curl session works, as written, against a live server; its Deployment section names every
setting with the default the code has, and the deployment files it names exist."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from core.settings import Settings
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
    assert logout["data"] == {"logout": True}
    assert me["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


def deployment_section() -> str:
    readme = (ROOT / "README.md").read_text()
    return readme.split("\n## Deployment\n", 1)[1].split("\n## ", 1)[0]


def settings_table() -> list[tuple[str, str, str]]:
    """(variable, default, meaning) of each row of the Deployment section's settings table."""
    table = deployment_section().split("\n### Settings\n", 1)[1]
    return re.findall(r"^\| `([A-Z][A-Z0-9_]*)` \| (.+?) \| (.+?) \|$", table, re.MULTILINE)


def rendered(default: object) -> str | None:
    """How the README writes a default (None: the default is described in words)."""
    if default is None:
        return None
    if isinstance(default, bool):
        return f"`{str(default).lower()}`"
    if isinstance(default, list):
        return f"`{json.dumps(default)}`"
    return f"`{default}`"


def test_the_deployment_settings_table_names_every_setting_once() -> None:
    names = [name for name, _, _ in settings_table()]
    assert len(names) == len(set(names)), "a setting is listed twice"
    assert set(names) == {name.upper() for name in Settings.model_fields}


def test_the_deployment_settings_table_gives_each_default_as_the_code_has_it() -> None:
    documented = {name: default for name, default, _ in settings_table()}
    for name, field in Settings.model_fields.items():
        expected = rendered(field.get_default(call_default_factory=True))
        if expected is None:
            assert "`" not in documented[name.upper()], f"{name} has no literal default: say it in words"
        else:
            assert documented[name.upper()] == expected, name


def test_every_deployment_file_the_readme_names_exists() -> None:
    named = set(re.findall(r"`?(deploy/[\w./-]+\w)", (ROOT / "README.md").read_text()))
    assert named, "the README names the deployment files"
    missing = {path for path in named if not (ROOT / path).exists() and path != "deploy/k8s/secret.env"}
    assert not missing, missing
