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
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from core.settings import Settings
from taskql.cli import services
from taskql.ops import logs

app = typer.Typer(help="taskql: a GraphQL API for task management.", no_args_is_help=True)
console = Console(stderr=True)
logger = logging.getLogger("taskql.cli.main")
LOW_OPEN_FILES_LIMIT = 4096
SCHEMA_FILE = Path(__file__).resolve().parents[2] / "graphql" / "schema.graphql"


def _settings() -> Settings:
    try:
        settings = Settings()
    except ValidationError as error:  # what to fix, without a traceback (and never a secret's value)
        for problem in error.errors(include_url=False, include_input=False):
            typer.echo(f"Refused configuration: {problem['msg']}", err=True)
        raise typer.Exit(2) from None
    logs.configure(settings.log_level, settings.log_format_resolved)
    return services.resolve(settings)


def _flush_cache(settings: Settings, why: str) -> None:
    """After a write outside GraphQL: no cached answer from before it may be served."""
    from taskql.cache.store import flush
    from taskql.data.routing import mark_everything_written

    assert settings.redis_url
    try:
        if settings.database_read_url:  # first, as a mutation does: the replica may not have it yet
            asyncio.run(
                mark_everything_written(settings.redis_url, settings.database_read_after_write_seconds)
            )
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


def _check_schema(settings: Settings) -> None:
    """When ``serve`` does not migrate: say loudly if the database is not ready for this code. Serving goes
    on (``/readyz`` answers 503 until it is), so a replica may start before the migration step ends."""
    from taskql.data import migrations

    try:
        revision, state = migrations.database_state(settings.database_url or "")
    except Exception as error:  # readiness reports it too; the server may still start before PostgreSQL
        logger.warning(
            "could not read the schema revision (%s); /readyz tells when it can", type(error).__name__
        )
        return
    if state == "behind":
        logger.warning(
            "the database is at revision %s but this code needs %s: run `python -m taskql migrate` (once, "
            "as its own step); until then /readyz answers 503",
            revision or "none (empty)",
            migrations.head_revision(),
        )
    elif state == "ahead":
        logger.info(
            "the database is at revision %s, newer than this code's %s", revision, migrations.head_revision()
        )


def _raise_open_files_limit() -> None:
    """Each connection holds a file descriptor: serve with as many as the hard limit allows."""
    from taskql.http.protocols import raise_open_files_limit

    limit = raise_open_files_limit()
    logger.info("open files limit: %d (was %d; hard limit %d)", limit.soft, limit.before, limit.hard)
    if limit.soft < LOW_OPEN_FILES_LIMIT:
        logger.warning(
            "the open files limit is %d: a few hundred connections use it up. Raise the hard limit (docker "
            "run --ulimit nofile=65536, systemd LimitNOFILE=65536, ulimit -Hn)",
            limit.soft,
        )


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on (0.0.0.0 in a container).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes, each with its own lifespan.")] = 1,
    migrate: Annotated[
        bool | None,
        typer.Option(
            "--migrate/--no-migrate",
            help="Apply migrations before serving. Default: in development only; in production run "
            "`migrate` as its own step.",
            show_default=False,
        ),
    ] = None,
    proxy_headers: Annotated[
        bool,
        typer.Option(help="Believe X-Forwarded-For/-Proto from the proxies FORWARDED_ALLOW_IPS names."),
    ] = True,
    forwarded_allow_ips: Annotated[
        str | None,
        typer.Option(
            help="Trusted proxies (IPs, networks or *); overrides FORWARDED_ALLOW_IPS.", show_default=False
        ),
    ] = None,
    timeout_keep_alive: Annotated[
        int,
        typer.Option(
            min=1, help="Seconds an idle keep-alive connection stays open: above the load balancer's own."
        ),
    ] = 5,
) -> None:
    """Serve the API (and GraphiQL in development) at http://HOST:PORT/graphql.

    On SIGTERM: no new connections, WebSockets closed (1001), requests drained (SHUTDOWN_TIMEOUT_SECONDS)."""
    from taskql.ops import metrics_dir

    metrics_folder = metrics_dir.prepare()  # first: before anything imports prometheus-client

    import uvicorn

    from taskql.data import migrations
    from taskql.http.protocols import BoundedHttpProtocol, BoundedWebSocketProtocol

    settings = _settings()
    _raise_open_files_limit()
    if migrate is None:
        migrate = settings.environment == "development"
    if migrate:
        if migrations.upgrade(settings.database_url or ""):
            _flush_cache(settings, "migrated")
    else:
        _check_schema(settings)
    if settings.graphiql_enabled:
        console.print(f"GraphiQL: [bold]http://{host}:{port}/graphql[/bold]")
    # uvicorn shuts down gracefully on SIGTERM, then raises the signal again; handled as an exit (not the
    # default kill) it lets the embedded servers stop with us. With several workers uvicorn's supervisor
    # takes SIGTERM over: it passes it to each worker, waits for them, and returns.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    if settings.metrics_port is not None:
        metrics_dir.serve_port(host, settings.metrics_port)
    if workers > 1:
        metrics_dir.supervising()
    try:
        uvicorn.run(
            "taskql.app:create_app",
            factory=True,  # each worker builds its own app (and runs its own lifespan) from the environment
            host=host,
            port=port,
            workers=workers,
            log_level=settings.log_level.lower(),
            # Applied in every worker too (each is a new interpreter); uvicorn's access log is replaced by
            # taskql.access (one line per request, with its operation, and never the query string).
            log_config=logs.dict_config(settings.log_level, settings.log_format_resolved),
            access_log=False,
            proxy_headers=proxy_headers,
            forwarded_allow_ips=forwarded_allow_ips or settings.forwarded_allow_ips,
            timeout_keep_alive=timeout_keep_alive,
            timeout_graceful_shutdown=settings.shutdown_timeout_seconds,
            # httptools (what uvicorn's "auto" picks) with REQUEST_HEAD_TIMEOUT_SECONDS and
            # MAX_CONNECTIONS_PER_CLIENT; WebSockets close with 1001 on shutdown and give their slot back.
            http=BoundedHttpProtocol,
            ws=BoundedWebSocketProtocol,
            # Browsers always offer permessage-deflate. With it, every socket keeps a zlib compressor and
            # decompressor for its whole life (about 40 kB, idle or not), to shrink events of a few hundred
            # bytes: not worth it when an instance holds thousands of mostly idle subscribers.
            ws_per_message_deflate=False,
        )
    finally:
        services.stop_embedded()
        metrics_dir.remove(metrics_folder)


@app.command()
def worker(
    metrics_host: Annotated[
        str, typer.Option(help="Interface for METRICS_PORT (when set): where a scraper reaches it.")
    ] = "0.0.0.0",  # noqa: S104 (only with METRICS_PORT, which an operator sets for a scraper)
) -> None:
    """Run background jobs (mail, cleanup) from the queue in PostgreSQL until SIGTERM, then drain them.

    `serve` runs one too unless JOBS_EMBEDDED_WORKER=false; run as many of these as the load needs."""
    from taskql.ops import metrics_dir

    metrics_folder = metrics_dir.prepare()  # first: before anything imports prometheus-client
    from taskql.data import migrations

    settings = _settings()
    revision, state = migrations.database_state(settings.database_url or "")
    if state == "behind":
        console.print(
            f"[red]The database is at revision {revision or 'none (empty)'} but this code needs "
            f"{migrations.head_revision()}: run `python -m taskql migrate` first.[/red]"
        )
        raise typer.Exit(code=1)
    if settings.metrics_port is not None:
        metrics_dir.serve_port(metrics_host, settings.metrics_port)
    try:
        asyncio.run(_work(settings))
    finally:
        services.stop_embedded()
        metrics_dir.remove(metrics_folder)


async def _work(settings: Settings) -> None:
    from taskql.jobs.worker import running

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signal_number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signal_number, stop.set)
    async with running(settings):
        logger.info(
            "job worker started: SIGTERM drains it (JOBS_DRAIN_SECONDS=%s)", settings.jobs_drain_seconds
        )
        await stop.wait()
        logger.info("job worker draining")
    logger.info("job worker stopped")


@app.command()
def migrate(revision: Annotated[str, typer.Argument(help="Target revision.")] = "head") -> None:
    """Apply database migrations. Concurrent runs (several replicas, a job retried) wait for each other on a
    PostgreSQL advisory lock: one migrates, the others find the database at head."""
    from taskql.data import migrations

    settings = _settings()
    applied = migrations.upgrade(settings.database_url or "", revision)
    if applied:
        _flush_cache(settings, "migrated")
    console.print(
        f"applied {applied} migration{'s' * (applied != 1)}: database at revision {revision}"
        if applied
        else f"nothing to apply: database at revision {revision}"
    )


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
    from taskql.cli.admin import make_admin

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
    from taskql.policy.persisted import MANIFEST, manifest_text
    from taskql.policy.persisted import build_manifest as build

    _write_or_check(MANIFEST, manifest_text(build()), check=check, command="build-manifest")


@app.command()
def seed(
    users: Annotated[int, typer.Option(min=1, help="Users to create.")] = 100,
    tasks: Annotated[int, typer.Option(min=0, help="Tasks to create, spread over the users.")] = 10_000,
) -> None:
    """Bulk-insert users and tasks (for development and benchmarks)."""
    from taskql.data import migrations
    from taskql.data.seed import SEED_PASSWORD
    from taskql.data.seed import seed as run_seed

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
