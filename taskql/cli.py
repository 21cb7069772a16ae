"""The ``taskql`` command line: ``python -m taskql --help``."""

from __future__ import annotations

import asyncio
import getpass
import logging
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from core.settings import Settings
from taskql import logs, services

app = typer.Typer(help="taskql: a GraphQL API for task management.", no_args_is_help=True)
console = Console(stderr=True)
logger = logging.getLogger("taskql.cli")
SCHEMA_FILE = Path(__file__).resolve().parent.parent / "graphql" / "schema.graphql"


def _settings() -> Settings:
    settings = Settings()
    logs.configure(settings.log_level)
    return services.resolve(settings)


def _flush_cache(settings: Settings, why: str) -> None:
    """After a write outside GraphQL: no cached answer from before it may be served."""
    from taskql.cache import flush

    assert settings.redis_url
    try:
        asyncio.run(flush(settings.redis_url))
    except Exception as error:  # the write is done; say loudly what is left to do
        console.print(
            f"[red]{why}, but the response cache could not be flushed ({type(error).__name__}): run "
            "`python -m taskql flush-cache` once Redis answers.[/red]"
        )
        raise typer.Exit(code=1) from None


def _dsn(settings: Settings) -> str:
    from sqlalchemy.engine import make_url

    assert settings.database_url
    return make_url(settings.database_url).set(drivername="postgresql").render_as_string(hide_password=False)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
    migrate: Annotated[bool, typer.Option(help="Apply migrations before serving.")] = True,
) -> None:
    """Serve the API (and GraphiQL in development) at http://HOST:PORT/graphql."""
    import uvicorn

    from taskql import migrate as migrations
    from taskql.websocket import GoingAwayWebSocketProtocol

    settings = _settings()
    if migrate and migrations.upgrade(settings.database_url or ""):
        _flush_cache(settings, "migrated")
    if settings.graphiql_enabled:
        console.print(f"GraphiQL: [bold]http://{host}:{port}/graphql[/bold]")
    # uvicorn shuts down gracefully on SIGTERM, then raises the signal again; handled as an exit (not the
    # default kill) it lets the embedded servers stop with us.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        uvicorn.run(
            "taskql.app:create_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level=settings.log_level.lower(),
            access_log=settings.log_level in {"DEBUG", "INFO"},  # not even filtered per request above
            proxy_headers=True,
            timeout_graceful_shutdown=20,
            ws=GoingAwayWebSocketProtocol,  # closes sockets with 1001 on shutdown
            # Browsers always offer permessage-deflate. With it, every socket keeps a zlib compressor and
            # decompressor for its whole life (about 40 kB, idle or not), to shrink events of a few hundred
            # bytes: not worth it when an instance holds thousands of mostly idle subscribers.
            ws_per_message_deflate=False,
        )
    finally:
        services.stop_embedded()


@app.command()
def migrate(revision: Annotated[str, typer.Argument(help="Target revision.")] = "head") -> None:
    """Apply database migrations (safe to run from several replicas at once)."""
    from taskql import migrate as migrations

    settings = _settings()
    if migrations.upgrade(settings.database_url or "", revision):
        _flush_cache(settings, "migrated")
    console.print(f"database at revision {revision}")


@app.command("create-admin")
def create_admin(
    email: Annotated[str, typer.Option(help="The admin's email.")],
    name: Annotated[str, typer.Option(help="Display name.")] = "Administrator",
    password: Annotated[
        str | None,
        typer.Option(
            help="Password (asked for when omitted; or set TASKQL_ADMIN_PASSWORD).",
            envvar="TASKQL_ADMIN_PASSWORD",
        ),
    ] = None,
) -> None:
    """Create an admin account, or make an existing account admin."""
    from resolvers.inputs import normalize_email
    from taskql.admin import make_admin

    settings = _settings()
    secret = password or getpass.getpass("Password: ")
    try:
        created = asyncio.run(make_admin(settings, email=email, name=name, password=secret))
    except ValueError as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(code=2) from None
    _flush_cache(settings, "the admin is saved")
    console.print(f"{'created admin' if created else 'promoted to admin'}: {normalize_email(email)}")


def _write_or_check(path: Path, text: str, *, check: bool, command: str) -> None:
    """Write a generated file, or with ``check`` fail (exit 1) if the committed one differs."""
    if check:
        if not path.exists() or path.read_text() != text:
            console.print(f"[red]{path} is out of date: run `python -m taskql {command}`[/red]")
            raise typer.Exit(code=1)
        console.print(f"{path} is up to date")
        return
    path.write_text(text)
    console.print(f"wrote {path}")


@app.command("export-schema")
def export_schema(
    output: Annotated[Path, typer.Option(help="Where to write the SDL.")] = SCHEMA_FILE,
    check: Annotated[bool, typer.Option(help="Fail if the file differs instead of writing it.")] = False,
) -> None:
    """Write the schema's SDL (the committed graphql/schema.graphql)."""
    from schema.build import sdl

    _write_or_check(output, sdl(), check=check, command="export-schema")


@app.command("build-manifest")
def build_manifest(
    check: Annotated[bool, typer.Option(help="Fail if graphql/manifest.json is out of date.")] = False,
) -> None:
    """Write graphql/manifest.json (trusted documents) from graphql/queries/*.graphql."""
    from taskql.persisted import MANIFEST, manifest_text
    from taskql.persisted import build_manifest as build

    _write_or_check(MANIFEST, manifest_text(build()), check=check, command="build-manifest")


@app.command()
def seed(
    users: Annotated[int, typer.Option(min=1, help="Users to create.")] = 100,
    tasks: Annotated[int, typer.Option(min=0, help="Tasks to create, spread over the users.")] = 10_000,
) -> None:
    """Bulk-insert users and tasks (for development and benchmarks)."""
    from taskql import migrate as migrations
    from taskql.seed import SEED_PASSWORD
    from taskql.seed import seed as run_seed

    settings = _settings()
    migrations.upgrade(settings.database_url or "")
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        bars = {
            "users": progress.add_task("users", total=users),
            "tasks": progress.add_task("tasks", total=tasks),
        }
        result = asyncio.run(
            run_seed(_dsn(settings), users, tasks, progress=lambda what, n: progress.advance(bars[what], n))
        )
    _flush_cache(settings, "seeded")
    console.print(
        f"seeded {result.users} users ({result.email_pattern}, password {SEED_PASSWORD!r}) "
        f"and {result.tasks} tasks"
    )


@app.command("flush-cache")
def flush_cache() -> None:
    """Drop every cached response (after changing data by hand, outside taskql)."""
    settings = _settings()
    _flush_cache(settings, "flush-cache was asked")
    console.print("response cache flushed")


def main() -> None:
    app()
