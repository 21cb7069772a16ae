"""One typed settings object, read from the environment (and a ``.env`` file). Secrets never print."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.startup_checks import check_origins, check_passwords

MIN_SECRET_LENGTH = 32
REPLACED_SETTINGS = {"DB_STATEMENT_TIMEOUT_MS": "DB_STATEMENT_TIMEOUT_SECONDS (in seconds)"}
MIN_DISTINCT_CHARACTERS = 8  # refuses "xxxx...", "changemechangeme..." and other padded placeholders


class Settings(BaseSettings):
    """Every setting taskql reads. Environment variables have the same names in upper case."""

    # hide_input_in_errors: a refused setting never prints the others (JWT_SECRET among them).
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", hide_input_in_errors=True
    )

    environment: Literal["development", "production"] = "development"
    database_url: str | None = Field(
        default=None, description="PostgreSQL URL. Unset: an embedded PostgreSQL in DATA_DIR."
    )
    database_read_url: str | None = Field(
        default=None,
        description="PostgreSQL URL of a read replica (a streaming-replication hot standby of DATABASE_URL). "
        "Queries and subscriptions read there unless what they show was written in the last "
        "DATABASE_READ_AFTER_WRITE_SECONDS; mutations and the session checks read the primary. Unset: "
        "every read goes to the primary.",
    )
    database_read_after_write_seconds: float = Field(
        default=5.0,
        gt=0,
        le=300,
        description="After a write, how long the reads of what it changed go to the primary; also the most "
        "the replica may lag (measured) before every read goes to the primary.",
    )
    redis_url: str | None = Field(
        default=None, description="Redis URL. Unset: an embedded Redis in DATA_DIR."
    )
    data_dir: Path = Field(default=Path(".data"), description="Where the embedded servers and secret live.")
    jwt_secret: SecretStr | None = Field(
        default=None, description="HMAC key for access tokens. Unset in development: generated in DATA_DIR."
    )
    jwt_issuer: str = "taskql"
    jwt_audience: str = "taskql"
    access_token_ttl_seconds: int = Field(default=900, ge=10, le=86_400)
    refresh_token_ttl_seconds: int = Field(default=30 * 86_400, ge=60, le=365 * 86_400)
    jwt_leeway_seconds: int = Field(
        default=30,
        ge=0,
        le=300,
        description="How far apart the clocks of the instances (which issue and verify access tokens) may "
        "be: a token is accepted up to this long before its iat/nbf and after its exp.",
    )
    db_pool_size: int = Field(default=10, ge=1, le=200)
    db_max_overflow: int = Field(default=10, ge=0, le=200)
    db_statement_timeout_seconds: float = Field(
        default=5.0,
        gt=0,
        le=600,
        description="The most a request waits on PostgreSQL for one thing: a statement (PostgreSQL's own "
        "statement_timeout, and the client's, half a second later, for a server that does not answer at "
        "all), a new connection, a pooled one. Past it, SERVICE_UNAVAILABLE (503).",
    )
    redis_socket_timeout_seconds: float = Field(default=0.5, gt=0)
    redis_max_connections: int = Field(
        default=16, ge=2, le=1000, description="Redis connections per process (the pub/sub one included)."
    )
    redis_circuit_open_seconds: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="After a Redis failure, how long to go without it before retrying.",
    )
    events_retention_seconds: int = Field(
        default=7 * 86_400,
        ge=60,
        description="How long task events are kept (in PostgreSQL) for subscribers to resume from; an older "
        "cursor is CURSOR_EXPIRED. Redis keeps at most a day of them.",
    )
    outbox_relay_seconds: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="How often the outbox relay publishes the side effects of committed writes that were not "
        "published yet (a crash after COMMIT, Redis away).",
    )
    session_recheck_seconds: float = Field(
        default=5.0,
        gt=0,
        le=300,
        description="How often every open WebSocket's session, account and role are checked again in "
        "PostgreSQL (one statement per instance).",
    )
    inbox_recheck_seconds: float = Field(
        default=15.0,
        gt=0,
        le=300,
        description="How often the live inbox (notificationEvents) checks again, in one statement per "
        "instance, whether its subscribers' inboxes moved: the most a notification waits when its wake-up "
        "was lost.",
    )
    events_max_per_stream: int = Field(
        default=10_000, ge=100, description="Events kept per owner (and for admins), at most."
    )
    events_max_queue: int = Field(
        default=1_000, ge=10, description="Events a subscriber may fall behind before its socket is closed."
    )
    response_cache: bool = Field(
        default=True, description="Answer repeated queries from Redis (exact: invalidated by every write)."
    )
    compression: bool = Field(
        default=True,
        description="gzip query answers of COMPRESSION_MIN_BYTES or more for clients that accept it (cache "
        "hits included; never a mutation's answer).",
    )
    compression_min_bytes: int = Field(
        default=1024,
        ge=0,
        description="Smaller answers are sent as they are (compressing them gains little).",
    )
    cors_origins: list[str] = Field(default_factory=list)
    graphiql: bool | None = Field(default=None, description="Serve GraphiQL. Default: on in development.")
    introspection: bool | None = Field(
        default=None,
        description='Answer introspection (__schema, __type) and suggest names in errors ("Did you mean '
        '...?"). Default: on in development, off in production.',
    )
    planned_completion: bool = Field(
        default=True,
        description="Complete objects with compiled plans (schema/planning). Off: graphql-core completes "
        "every field itself, the same answers more slowly (to tell a planner bug from another).",
    )
    csrf_prevention: bool | None = Field(
        default=None,
        description="Refuse requests a browser could send cross-site without a preflight, as Apollo Server "
        "does. Default: on in production.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "console"] | None = Field(
        default=None, description="json (one object per line) or console. Default: json in production."
    )
    metrics_token: SecretStr | None = Field(
        default=None,
        min_length=16,
        description="Bearer token a scraper sends for /metrics on the API port (unset: open in development, "
        "not served in production).",
    )
    metrics_port: int | None = Field(
        default=None, ge=1, le=65535, description="serve: also serve the metrics on this port (no token)."
    )
    persisted_queries: Literal["off", "apq", "trusted-only"] = Field(
        default="apq",
        description="off; apq (Apollo's automatic persisted queries, plus the trusted documents by hash); "
        "trusted-only (only the operations of graphql/manifest.json execute).",
    )
    apq_ttl_seconds: int = Field(default=7 * 86_400, ge=60)
    apq_max_document_bytes: int = Field(default=32_768, ge=256)
    apq_registrations_per_minute: int = Field(default=60, ge=1)
    shutdown_timeout_seconds: int = Field(
        default=20,
        ge=0,
        le=3600,
        description="On SIGTERM, how long in-flight requests may take to finish before they are cancelled.",
    )
    forwarded_allow_ips: str = Field(
        default="127.0.0.1",
        description="Proxies (comma-separated IPs or networks, or *) whose X-Forwarded-For and "
        "X-Forwarded-Proto headers are believed.",
    )
    max_body_bytes: int = Field(
        default=1 << 20,
        ge=1024,
        description="Larger request bodies are refused (413).",
    )
    body_idle_timeout_seconds: float = Field(
        default=10, gt=0, le=300, description="A request body that stops arriving this long is refused (408)."
    )
    request_head_timeout_seconds: float = Field(
        default=5,
        gt=0,
        le=300,
        description="serve: a connection must send a whole request head (request line and headers) this soon "
        "after it opens, and after the first byte of each later request, or it is closed (with a 408 if the "
        "head had begun).",
    )
    # 256: far above what one client needs (a browser opens 6 connections per host, HTTP client pools 10 to
    # 100) and far below the descriptors a process has, so that one address cannot take them all.
    max_connections_per_client: int = Field(
        default=256,
        ge=0,
        description="serve: connections one client address may hold open per process (HTTP and WebSocket); "
        "one more is closed at once. 0: no bound (behind a proxy, whose address every connection has).",
    )
    max_variables_bytes: int = Field(
        default=64 << 10,
        ge=256,
        description="Larger `variables` or `extensions` (as JSON) are refused (400).",
    )
    # Limits on one operation, checked before anything executes (schema/extensions/query_limits.py,
    # schema/analysis/cost.py).
    max_query_depth: int = Field(
        default=10,
        ge=2,
        le=100,
        description="Deepest nesting of fields in an operation (introspection aside).",
    )
    max_query_aliases: int = Field(default=30, ge=1, le=1000, description="Aliases per operation, at most.")
    max_query_tokens: int = Field(
        default=2000,
        ge=100,
        le=100_000,
        description="Lexical tokens per document (comments too): parsing stops.",
    )
    max_query_directives: int = Field(
        default=50,
        ge=1,
        le=1000,
        description="Directives used per operation (its fragments included), at most.",
    )
    max_query_cost: int = Field(
        default=10_000, ge=1, description="Estimated cost per operation (full pages assumed), at most."
    )
    # Budgets in Redis, shared by every instance (taskql/policy/rate_limits.py).
    rate_limits: bool = Field(default=True, description="Charge operations to per-client budgets in Redis.")
    rate_limit_window_seconds: int = Field(
        default=60, ge=1, le=86_400, description="Length of a points window (aligned to the clock)."
    )
    rate_limit_points: int = Field(default=20_000, ge=1, description="Points per viewer per window.")
    rate_limit_anonymous_points: int = Field(
        default=2_000, ge=1, description="Points per client IP per window, for callers without a token."
    )
    rate_limit_cached_cost: int = Field(
        default=1, ge=0, le=1000, description="Points a cache hit costs, charged after it is sent (0: free)."
    )
    auth_attempts_window_seconds: int = Field(
        default=300,
        ge=1,
        le=86_400,
        description="The moving window login and refresh attempts are counted in.",
    )
    login_attempts_per_account: int = Field(default=10, ge=1, description="Logins per email per window.")
    login_attempts_per_ip: int = Field(default=100, ge=1, description="Logins per client IP per window.")
    refresh_attempts_per_account: int = Field(default=30, ge=1, description="Refreshes per user per window.")
    refresh_attempts_per_ip: int = Field(default=300, ge=1, description="Refreshes per client IP per window.")
    # Mutations sent with an Idempotency-Key header (taskql/policy/idempotency.py), kept in PostgreSQL.
    idempotency_ttl_seconds: int = Field(
        default=86_400,
        ge=1,
        le=30 * 86_400,
        description="How long a mutation's Idempotency-Key answers its retries with the first outcome; "
        "after that the key may be used again.",
    )
    idempotency_lock_seconds: int = Field(
        default=60,
        ge=1,
        le=3600,
        description="A key whose request has run this long without an answer (its instance died) is taken "
        "over by a retry, which executes the mutation. Keep it above the slowest mutation.",
    )

    # Background jobs (taskql/jobs): a PostgreSQL queue (pgqueuer) in DATABASE_URL.
    jobs_embedded_worker: bool = Field(
        default=True,
        description="Run a job worker inside `serve` (the zero-config default needs nothing else). Turn "
        "it off where `python -m taskql worker` runs as processes of its own.",
    )
    jobs_concurrency: int = Field(default=8, ge=2, le=500, description="Jobs one worker runs at once.")
    jobs_heartbeat_seconds: float = Field(
        default=30.0,
        ge=1,
        le=3600,
        description="A picked job whose worker has not beaten its heart for this long (it died) is picked "
        "up again by another worker.",
    )
    jobs_max_attempts: int = Field(
        default=6, ge=1, le=100, description="Attempts of a failing job before it is held as failed."
    )
    jobs_backoff_initial_seconds: float = Field(
        default=2.0, gt=0, le=3600, description="Delay before a failed job's first retry (then doubled)."
    )
    jobs_backoff_max_seconds: float = Field(
        default=600.0, gt=0, le=86_400, description="The longest delay between two attempts of a job."
    )
    jobs_drain_seconds: float = Field(
        default=25.0,
        ge=0,
        le=3600,
        description="On SIGTERM, how long a worker lets its running jobs finish before it stops them (they "
        "are picked up again elsewhere).",
    )
    # Mail, sent by the worker.
    smtp_url: str | None = Field(
        default=None,
        description="Where mail goes: smtp://[user:password@]host[:port] (STARTTLS when the server offers "
        "it; ?starttls=require to insist) or smtps:// (TLS from the start). Unset: one .eml file per message "
        "in DATA_DIR/mail/.",
    )
    mail_from: str = Field(
        default="taskql <no-reply@taskql.localhost>", description="The From of every mail."
    )
    public_url: str = Field(
        default="http://127.0.0.1:8000",
        description="The address people reach taskql at: the base of every link in a mail.",
    )
    # Webhooks, delivered by the worker (taskql/webhooks, taskql/jobs/webhooks.py).
    webhooks_allow_private: bool = Field(
        default=False,
        description="Let webhooks reach loopback, private, link-local and other internal addresses, and "
        "(in production) plain http:// URLs: for development and tests only.",
    )
    webhook_concurrency: int = Field(
        default=4,
        ge=1,
        le=100,
        description="Endpoints one worker delivers to at once (each holds a PostgreSQL connection for its "
        "lock while it delivers); more endpoints wait their turn.",
    )
    webhook_retry_base_seconds: float = Field(
        default=5.0, gt=0, le=3600, description="Delay before a failed delivery's first retry (then doubled)."
    )
    webhook_retry_max_seconds: float = Field(
        default=9000.0,
        gt=0,
        le=86_400,
        description="The longest delay between two attempts of a delivery. With the defaults, the 20 "
        "attempts that disable an endpoint span about a day.",
    )
    webhook_max_failures: int = Field(
        default=20,
        ge=1,
        le=1000,
        description="Consecutive failed attempts after which an endpoint is disabled and its owner told.",
    )
    require_verified_email: bool = Field(
        default=False,
        description="Refuse logins of accounts whose address is not verified (EMAIL_NOT_VERIFIED); register "
        "then answers the same whether or not the address has an account.",
    )
    account_mails_per_account: int = Field(
        default=5, ge=1, description="Reset and verification mails per account (or address) per window."
    )
    account_mails_per_ip: int = Field(
        default=30, ge=1, description="Reset and verification mails asked for per client IP per window."
    )

    @field_validator("database_url", "database_read_url", "redis_url", "smtp_url", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @model_validator(mode="after")
    def _refuse_replaced_settings(self) -> Settings:
        # A setting renamed must not be ignored in silence: the deployment would run with the default.
        for old, new in REPLACED_SETTINGS.items():
            if os.environ.get(old):
                raise ValueError(f"{old} was replaced by {new}: set that instead (and remove {old}).")
        return self

    @model_validator(mode="after")
    def _refuse_weak_secret(self) -> Settings:
        secret = self.jwt_secret.get_secret_value() if self.jwt_secret else None
        if secret is not None and (
            len(secret) < MIN_SECRET_LENGTH or len(set(secret)) < MIN_DISTINCT_CHARACTERS
        ):
            raise ValueError(
                f"JWT_SECRET is shorter than {MIN_SECRET_LENGTH} characters or too repetitive to be random. "
                'Generate one with: python -c "import secrets; print(secrets.token_urlsafe(48))"'
            )
        if secret is None and self.environment == "production":
            raise ValueError("JWT_SECRET must be set in production (it is generated only in development).")
        return self

    @model_validator(mode="after")
    def _refuse_exposed_configuration(self) -> Settings:
        production = self.environment == "production"
        problems = check_passwords(
            {
                "DATABASE_URL": self.database_url,
                "DATABASE_READ_URL": self.database_read_url,
                "REDIS_URL": self.redis_url,
                "SMTP_URL": self.smtp_url,
            },
            production=production,
        )
        problems += check_origins(self.cors_origins, production=production)
        if problems:
            raise ValueError(" ".join(problems))
        return self

    @property
    def introspection_enabled(self) -> bool:
        return self.introspection if self.introspection is not None else self.environment == "development"

    @property
    def csrf_prevention_enabled(self) -> bool:
        return self.csrf_prevention if self.csrf_prevention is not None else self.environment == "production"

    @property
    def graphiql_enabled(self) -> bool:
        if self.persisted_queries == "trusted-only":  # GraphiQL sends ad-hoc documents: it follows the mode
            return False
        return self.graphiql if self.graphiql is not None else self.environment == "development"

    @property
    def log_format_resolved(self) -> Literal["json", "console"]:
        if self.log_format is not None:
            return self.log_format
        return "json" if self.environment == "production" else "console"

    @property
    def secret(self) -> str:
        if self.jwt_secret is None:
            raise RuntimeError("JWT_SECRET is not resolved yet: start through taskql.cli.services.")
        return self.jwt_secret.get_secret_value()
