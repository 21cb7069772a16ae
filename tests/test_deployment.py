"""What can be checked of the Compose file and the image here (no Docker engine on this machine): they
parse, their commands and flags exist, their variables are settings taskql knows, their probes hit routes."""

from __future__ import annotations

import re
from typing import Any

import typer.main
import yaml
from starlette.routing import Route

from core.settings import Settings
from taskql.app import create_app
from taskql.cli import app as cli
from tests.processes import ROOT, TEST_SECRET

SETTINGS = {name.upper() for name in Settings.model_fields}


def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "docker-compose.yml").read_text()))


def dockerfile_json(instruction: str) -> list[str]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    match = re.search(rf"^{instruction}\s+(?:--\S+\s+)*(?:CMD\s+)?(\[.*\])\s*$", text, re.MULTILINE)
    assert match, instruction
    return list(yaml.safe_load(match.group(1)))


def cli_commands() -> dict[str, set[str]]:
    """Each command of the CLI and the options it takes."""
    group: Any = typer.main.get_command(cli)
    return {
        name: {option for param in command.params for option in (*param.opts, *param.secondary_opts)}
        for name, command in group.commands.items()
    }


def test_compose_runs_postgres_redis_a_migration_and_the_api() -> None:
    services = compose()["services"]
    assert set(services) == {"postgres", "redis", "migrate", "api"}
    assert services["migrate"]["command"] == ["python", "-m", "taskql", "migrate"]
    assert services["api"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert "postgres-data:/var/lib/postgresql/data" in services["postgres"]["volumes"]


def test_every_variable_given_to_taskql_is_a_setting() -> None:
    services = compose()["services"]
    for name in ("migrate", "api"):
        assert set(services[name]["environment"]) <= SETTINGS, name


def test_the_image_command_and_probe_point_at_real_commands_and_routes() -> None:
    command = dockerfile_json("CMD")
    assert command[:3] == ["python", "-m", "taskql"]
    subcommand, *options = command[3:]
    known = cli_commands()
    assert subcommand in known
    assert {option for option in options if option.startswith("--")} <= known[subcommand]
    probe = " ".join(dockerfile_json("HEALTHCHECK"))
    path = re.search(r"http://127\.0\.0\.1:8000(/\w+)", probe)
    assert path
    routes = {
        route.path
        for route in create_app(Settings(jwt_secret=TEST_SECRET)).routes
        if isinstance(route, Route)
    }
    assert path.group(1) in routes
    assert "8000" in command


def test_the_image_copies_every_package_the_app_imports() -> None:
    copied = set(re.findall(r"^COPY (\w+)/ ", (ROOT / "Dockerfile").read_text(), re.MULTILINE))
    packages = {path.parent.name for path in ROOT.glob("*/__init__.py")} - {"tests", "bench"}
    assert packages <= copied
    assert "graphql" in copied  # the committed schema and the client operations


def test_compose_refuses_to_start_without_a_jwt_secret() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    assert "JWT_SECRET: ${JWT_SECRET:?" in text
    assert ".env" in (ROOT / ".dockerignore").read_text().split()  # local secrets stay out of the image
