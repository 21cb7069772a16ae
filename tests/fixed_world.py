"""A small world with fixed IDs, written straight into PostgreSQL and rebuilt in a few milliseconds.

The fuzz needs IDs it can put into generated documents before any request runs (so the strategies are
static and an example replays exactly), and a way back to the same state after each generated mutation
(which may log the viewer out, demote them or deactivate them). Registering through the API would cost an
argon2 hash per account per example; this writes the rows the API would have written.
"""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
from redis.asyncio import Redis

from auth.passwords import HASHER
from auth.tokens import TokenConfig, hash_refresh_token, issue_access_token
from core.ids import encode_id

PASSWORD = "a long enough passphrase"


@functools.cache
def password_hash() -> str:
    """Every account of the world has this password; hashed once per process (argon2 takes a while)."""
    return HASHER.hash(PASSWORD)


@dataclass(frozen=True)
class Person:
    key: uuid.UUID
    email: str
    name: str
    role: str = "USER"
    active: bool = True

    @property
    def id(self) -> str:
        return encode_id("User", self.key)

    @property
    def session(self) -> uuid.UUID:
        return uuid.UUID(int=self.key.int + 1)

    @property
    def refresh_token(self) -> str:
        return f"fixed-refresh-token-of-{self.name.lower()}"

    @property
    def notification(self) -> uuid.UUID:
        """The one unread entry of their inbox."""
        return uuid.UUID(int=self.key.int + 2)

    @property
    def notification_id(self) -> str:
        return encode_id("Notification", self.notification)

    @property
    def webhook(self) -> uuid.UUID:
        """Their one webhook, with one failed delivery."""
        return uuid.UUID(int=self.key.int + 3)

    @property
    def webhook_id(self) -> str:
        return encode_id("Webhook", self.webhook)

    @property
    def delivery_id(self) -> str:
        return encode_id("WebhookDelivery", uuid.UUID(int=self.key.int + 4))


@dataclass(frozen=True)
class FixedTask:
    key: uuid.UUID
    owner: Person
    title: str
    status: str = "TODO"
    priority: str = "MEDIUM"
    description: str | None = None
    due_at: datetime | None = None
    tags: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        return encode_id("Task", self.key)


ALICE = Person(uuid.UUID("a11ce000-0000-4000-8000-000000000000"), "alice@example.com", "Alice")
BOB = Person(uuid.UUID("b0b00000-0000-4000-8000-000000000000"), "bob@example.com", "Bob")
ROOT = Person(uuid.UUID("a0000000-0000-4000-8000-000000000000"), "root@example.com", "Root", role="ADMIN")
CAROL = Person(uuid.UUID("ca201000-0000-4000-8000-000000000000"), "carol@example.com", "Carol", active=False)
PEOPLE = (ALICE, BOB, ROOT, CAROL)
BASE = datetime(2030, 1, 1, tzinfo=UTC)
TASKS = (
    FixedTask(
        uuid.UUID("a11ce000-0000-4000-8000-00000000000a"),
        ALICE,
        "Alice's secret plan",
        description="for Alice only",
        priority="URGENT",
        due_at=datetime(2020, 1, 1, tzinfo=UTC),
        tags=("work", "secret"),
    ),
    FixedTask(uuid.UUID("a11ce000-0000-4000-8000-00000000000b"), ALICE, "Deploy the backend", status="DONE"),
    FixedTask(uuid.UUID("b0b00000-0000-4000-8000-00000000000a"), BOB, "Bob's errand", tags=("home",)),
    FixedTask(uuid.UUID("a0000000-0000-4000-8000-00000000000a"), ROOT, "Audit the accounts", priority="HIGH"),
)
# A project: Alice its OWNER, Bob a VIEWER (Root, an admin, is not a member); one task of it, Alice's,
# assigned to Bob, with a comment of Bob's and its history; an invitation to an address with no account.
PROJECT = uuid.UUID("9a0ec700-0000-4000-8000-000000000000")
PROJECT_ID = encode_id("Project", PROJECT)
PROJECT_TASK = FixedTask(uuid.UUID("9a0ec700-0000-4000-8000-00000000000a"), ALICE, "Ship the launch")
COMMENT = uuid.UUID("9a0ec700-0000-4000-8000-00000000000c")
COMMENT_ID = encode_id("Comment", COMMENT)
INVITATION = uuid.UUID("9a0ec700-0000-4000-8000-00000000000e")
INVITATION_ID = encode_id("ProjectInvitation", INVITATION)
MISSING_TASK = encode_id("Task", uuid.UUID("dead0000-0000-4000-8000-000000000000"))
MISSING_USER = encode_id("User", uuid.UUID("dead0000-0000-4000-8000-000000000001"))
KNOWN_IDS = (
    *(task.id for task in TASKS),
    *(person.id for person in PEOPLE),
    PROJECT_ID,
    PROJECT_TASK.id,
    COMMENT_ID,
    INVITATION_ID,
    MISSING_TASK,
    MISSING_USER,
)


def access_token(config: TokenConfig, person: Person) -> str:
    token, _ = issue_access_token(config, person.key, person.session, datetime.now(UTC))
    return token


async def rebuild(connection: asyncpg.Connection, redis: Redis) -> None:
    """Empty the tables and taskql's Redis keys, then write the world again."""
    # DELETE, not TRUNCATE: on a few rows it is ten times faster (TRUNCATE replaces every index's file).
    await connection.execute(
        "DELETE FROM refresh_tokens; DELETE FROM auth_sessions; DELETE FROM tasks; DELETE FROM projects;"
        " DELETE FROM users; DELETE FROM pgqueuer"
    )
    await connection.executemany(
        "INSERT INTO users (id, email, name, password_hash, role, is_active, created_at, updated_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
        [
            (p.key, p.email, p.name, password_hash(), p.role, p.active, BASE + timedelta(minutes=n))
            for n, p in enumerate(PEOPLE)
        ],
    )
    await connection.executemany(
        "INSERT INTO auth_sessions (id, user_id, created_at) VALUES ($1, $2, $3)",
        [(p.session, p.key, BASE) for p in PEOPLE if p.active],
    )
    await connection.executemany(
        "INSERT INTO refresh_tokens (id, session_id, token_hash, created_at, expires_at)"
        " VALUES ($1, $2, $3, now(), now() + interval '30 days')",
        [(p.session, p.session, hash_refresh_token(p.refresh_token)) for p in PEOPLE if p.active],
    )
    await connection.executemany(
        "INSERT INTO tasks (id, owner_id, title, description, status, priority, due_at, tags, created_at,"
        " updated_at, completed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10)",
        [
            (
                t.key, t.owner.key, t.title, t.description, t.status, t.priority, t.due_at, list(t.tags),
                BASE + timedelta(hours=n), BASE + timedelta(hours=n) if t.status == "DONE" else None,
            )
            for n, t in enumerate(TASKS)
        ],
    )  # fmt: skip
    await connection.executemany(
        "INSERT INTO notifications (id, user_id, kind, title, body, dedupe_key, seq)"
        " VALUES ($1, $2, 'TASK_DUE_SOON', $3, 'soon', $3, 1)",
        [(p.notification, p.key, f"for {p.name}") for p in PEOPLE],
    )
    await connection.executemany(
        "INSERT INTO notification_settings (user_id, last_notification_seq) VALUES ($1, 1)",
        [(p.key,) for p in PEOPLE],
    )
    # To a closed local port, which the address rules refuse: an attempt fails at once, with no network.
    await connection.executemany(
        "INSERT INTO webhooks (id, owner_id, url, events, description, enabled, secret_salt, created_at,"
        " updated_at) VALUES ($1, $2, $3, '{TASK_CREATED}', $4, true, 'salt', $5, $5)",
        [
            (p.webhook, p.key, f"http://127.0.0.1:9/hook-of-{p.name.lower()}", f"for {p.name}", BASE)
            for p in PEOPLE
        ],
    )
    await connection.executemany(
        "INSERT INTO webhook_deliveries (id, webhook_id, message_id, event_type, payload, status, attempt,"
        " created_at) VALUES ($1, $2, $1, 'TASK_CREATED', '{}', 'failed', 1, $3)",
        [(uuid.UUID(int=p.key.int + 4), p.webhook, BASE) for p in PEOPLE],
    )
    await _project(connection)
    keys = [key async for key in redis.scan_iter(match="taskql:*", count=1000)]
    if keys:
        await redis.delete(*keys)


async def _project(connection: asyncpg.Connection) -> None:
    await connection.execute(
        "INSERT INTO projects (id, name, description, created_at, updated_at)"
        " VALUES ($1, 'Launch', 'v1', $2, $2)",
        PROJECT,
        BASE,
    )
    await connection.executemany(
        "INSERT INTO project_members (project_id, user_id, role, added_at) VALUES ($1, $2, $3, $4)",
        [(PROJECT, ALICE.key, "OWNER", BASE), (PROJECT, BOB.key, "VIEWER", BASE + timedelta(minutes=1))],
    )
    task = PROJECT_TASK
    await connection.execute(
        "INSERT INTO tasks (id, owner_id, title, project_id, assignee_id, created_at, updated_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $6)",
        task.key, task.owner.key, task.title, PROJECT, BOB.key, BASE + timedelta(hours=10),
    )  # fmt: skip
    await connection.execute(
        "INSERT INTO comments (id, task_id, author_id, body, created_at, updated_at) VALUES ($1, $2, $3,"
        " 'On it.', $4, $4)",
        COMMENT, task.key, BOB.key, BASE + timedelta(hours=11),
    )  # fmt: skip
    await connection.execute(
        "INSERT INTO task_activity (id, task_id, actor_id, kind, changes, at) VALUES ($1, $2, $3, 'CREATED',"
        " $4, $5)",
        uuid.UUID(int=COMMENT.int + 1), task.key, ALICE.key,
        '[{"field": "title", "from": null, "to": "Ship the launch"}]', BASE + timedelta(hours=10),
    )  # fmt: skip
    await connection.execute(
        "INSERT INTO project_invitations (id, project_id, email, role, invited_by_id, created_at, expires_at)"
        " VALUES ($1, $2, 'dave@example.com', 'EDITOR', $3, now(), now() + interval '7 days')",
        INVITATION, PROJECT, ALICE.key,
    )  # fmt: skip


async def snapshot(connection: asyncpg.Connection) -> list[list[asyncpg.Record]]:
    """Every row taskql keeps, in a fixed order: to tell whether a request wrote anything."""
    return [
        await connection.fetch(f"SELECT * FROM {table} ORDER BY 1")
        for table in (
            "users",
            "auth_sessions",
            "refresh_tokens",
            "tasks",
            "account_tokens",
            "pgqueuer",
            "notifications",
            "notification_settings",
            "webhooks",
            "webhook_deliveries",
            "projects",
            "project_members",
            "project_invitations",
            "comments",
            "task_activity",
        )
    ]
