"""Webhooks: a user's endpoints, the events each write sends them, and their delivery log.

Every task write tells each of its audiences' webhooks subscribed to its event (``fan_out``, in the write's
own transaction): one delivery row per endpoint, and a ``webhook`` job that delivers the endpoint's rows in
order (``taskql.jobs.webhooks``). A rolled-back write sends nothing; a committed one always has its
deliveries. Each webhook is its owner's alone: another user's (an admin's too) is NOT_FOUND everywhere.

Where a URL may point is the app's to judge (``WebhookSender.check``: the SSRF rules, DNS included), and so is
the sending of ``testWebhook`` and ``retryWebhookDelivery``, which make one attempt at once and answer how
it went.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Protocol

import orjson
from pydantic import Field, StringConstraints
from sqlalchemy import CursorResult, Executable, Uuid, bindparam, func, text
from sqlalchemy import select as select_columns
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from auth.webhook_secrets import new_salt, secret_of, signing_secrets
from core.errors import AppError, BadUserInput, NotFound
from core.ids import encode_id
from core.sql import Sql, compile_sql
from models import CommentRecord, DeliveryStatus, TaskRecord, Webhook, WebhookDelivery, WebhookEventType
from resolvers import jobs
from resolvers.events import EVERYONE, EventDraft, TaskEventKind
from resolvers.inputs import NO_NUL, Strict, validate
from resolvers.pagination import Listing, PageRequest, SortKey, from_iso, iso, keyset, page_sql, read_page

if TYPE_CHECKING:
    from resolvers.context import Context

MAX_WEBHOOKS = 10  # per user
SUBSCRIBABLE = tuple(kind for kind in WebhookEventType if kind is not WebhookEventType.PING)
EVENT_NAMES = {  # the payload's "type", the Standard Webhooks way
    WebhookEventType.TASK_CREATED: "task.created",
    WebhookEventType.TASK_UPDATED: "task.updated",
    WebhookEventType.TASK_DELETED: "task.deleted",
    WebhookEventType.TASK_DUE_SOON: "task.due_soon",
    WebhookEventType.COMMENT_CREATED: "comment.created",
    WebhookEventType.COMMENT_UPDATED: "comment.updated",
    WebhookEventType.COMMENT_DELETED: "comment.deleted",
    WebhookEventType.PING: "webhook.ping",
}
_OF_KIND = {
    TaskEventKind.CREATED: WebhookEventType.TASK_CREATED,
    TaskEventKind.UPDATED: WebhookEventType.TASK_UPDATED,
    TaskEventKind.DELETED: WebhookEventType.TASK_DELETED,
    TaskEventKind.COMMENT_ADDED: WebhookEventType.COMMENT_CREATED,
    TaskEventKind.COMMENT_UPDATED: WebhookEventType.COMMENT_UPDATED,
    TaskEventKind.COMMENT_DELETED: WebhookEventType.COMMENT_DELETED,
}


class WebhookDisabled(AppError):
    code = "WEBHOOK_DISABLED"


class Sent(Protocol):
    """How one attempt went (``taskql.webhooks.delivery.Attempt``)."""

    @property
    def ok(self) -> bool: ...
    @property
    def status(self) -> int | None: ...
    @property
    def duration_ms(self) -> int: ...
    @property
    def body(self) -> str: ...
    @property
    def error(self) -> str | None: ...


class WebhookSender(Protocol):
    """The app's webhook transport (``taskql.webhooks``)."""

    async def check(self, url: str) -> str:
        """The URL as it will be used, or ``BAD_USER_INPUT`` (field ``input.url``) if it may not be: a scheme,
        a user name, a host or an address (its DNS answers included) the server refuses."""
        ...

    async def send(self, url: str, payload: bytes, *, secrets: Sequence[str], message_id: str) -> Sent: ...


@dataclass(frozen=True, slots=True)
class WebhookRecord:
    id: uuid.UUID
    url: str
    events: tuple[WebhookEventType, ...]
    description: str | None
    enabled: bool
    disabled_reason: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    id: uuid.UUID
    seq: int
    message_id: uuid.UUID
    event_type: WebhookEventType
    attempt: int
    status: DeliveryStatus
    response_status: int | None
    duration_ms: int | None
    response_body: str | None
    error: str | None
    created_at: datetime
    attempted_at: datetime | None
    next_attempt_at: datetime | None


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    """One event for one user's webhooks."""

    owner_id: uuid.UUID
    event_type: WebhookEventType
    payload: dict[str, Any]
    message_id: uuid.UUID


def message_header(message_id: uuid.UUID) -> str:
    """The ``webhook-id`` a receiver sees."""
    return f"msg_{message_id.hex}"


# -- Inputs


Url = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2048), NO_NUL]
Events = Annotated[list[WebhookEventType], Field(min_length=1, max_length=len(SUBSCRIBABLE))]
Description = Annotated[str, StringConstraints(strip_whitespace=True, max_length=500), NO_NUL]


class WebhookCreate(Strict):
    url: Url
    events: Events
    description: Description | None = None


class WebhookPatch(Strict):
    url: Url | None = None
    events: Events | None = None
    description: Description | None = None
    enabled: bool | None = None


def _events(events: Sequence[WebhookEventType], *, field: str) -> list[str]:
    if WebhookEventType.PING in events:
        raise BadUserInput(f"{field}: PING is sent by testWebhook only, not subscribed to.", field=field)
    return [kind.value for kind in dict.fromkeys(events)]


def _not_null(patch: WebhookPatch, *names: str) -> None:
    for name in names:
        if name in patch.model_fields_set and getattr(patch, name) is None:
            raise BadUserInput(f"input.{name}: cannot be null.", field=f"input.{name}")


_LOCK_OWNER = text("SELECT 1 FROM users WHERE id = :id FOR UPDATE")


async def run(db: AsyncSession, statement: Executable, values: Mapping[str, Any]) -> CursorResult[Any]:
    """A statement of ours (text, Core) in ``db``'s transaction."""
    return await (await db.connection()).execute(statement, values)


def _sender(ctx: Context) -> WebhookSender:
    sender = ctx.hooks.webhooks
    if sender is None:
        raise AppError("Webhooks are not available on this server.")
    return sender


def _record(row: Webhook) -> WebhookRecord:
    return WebhookRecord(
        row.id, row.url, tuple(WebhookEventType(kind) for kind in row.events), row.description, row.enabled,
        row.disabled_reason, row.created_at,
    )  # fmt: skip


async def _mine(db: AsyncSession, ctx: Context, webhook_id: uuid.UUID, *, lock: bool = False) -> Webhook:
    viewer = ctx.require_viewer()
    row = await db.get(Webhook, webhook_id, with_for_update=lock, populate_existing=lock)
    if row is None or row.owner_id != viewer.user_id:
        raise NotFound.for_id("Webhook", encode_id("Webhook", webhook_id))
    return row


# -- Mutations


async def create_webhook(ctx: Context, *, values: Mapping[str, Any]) -> tuple[WebhookRecord, str]:
    """The new webhook and its signing secret (shown this once)."""
    viewer = ctx.require_viewer()
    given = validate(WebhookCreate, values, argument="input")
    events = _events(given.events, field="input.events")
    url = await _sender(ctx).check(given.url)
    now = ctx.now()
    async with ctx.transaction() as db:
        # The owner's row, locked: two creations at once count each other.
        await run(db, _LOCK_OWNER, {"id": viewer.user_id})
        count = await db.scalar(
            select_columns(func.count()).select_from(Webhook).where(col(Webhook.owner_id) == viewer.user_id)
        )
        if (count or 0) >= MAX_WEBHOOKS:
            raise BadUserInput(f"At most {MAX_WEBHOOKS} webhooks per user: delete one first.", field="input")
        row = Webhook(
            owner_id=viewer.user_id,
            url=url,
            events=events,
            description=given.description or None,
            secret_salt=new_salt(),
            created_at=now,
            updated_at=now,
        )
        db.add(row)
        await db.flush()
        record = _record(row)
    return record, secret_of(ctx.tokens.secret, row.secret_salt)


async def update_webhook(ctx: Context, *, webhook_id: uuid.UUID, values: Mapping[str, Any]) -> WebhookRecord:
    """Change what is given. Enabling a disabled webhook counts its failures from zero; events written while
    it was disabled are not sent."""
    patch = validate(WebhookPatch, values, argument="input")
    _not_null(patch, "url", "events", "enabled")
    url = await _sender(ctx).check(patch.url) if patch.url is not None else None
    async with ctx.transaction() as db:
        row = await _mine(db, ctx, webhook_id, lock=True)
        if url is not None:
            row.url = url
        if patch.events is not None:
            row.events = _events(patch.events, field="input.events")
        if "description" in patch.model_fields_set:
            row.description = patch.description or None
        if patch.enabled is not None and patch.enabled != row.enabled:
            row.enabled = patch.enabled
            row.consecutive_failures = 0
            row.disabled_reason = None if patch.enabled else "disabled by its owner"
        row.updated_at = ctx.now()
        db.add(row)
        await db.flush()
        if patch.enabled:  # what waited while its owner had it disabled goes now
            await jobs.enqueue(db, jobs.WebhookJob(str(row.id)))
        return _record(row)


async def delete_webhook(ctx: Context, *, webhook_id: uuid.UUID) -> uuid.UUID:
    """Delete it and its delivery log; nothing more is sent to it (an attempt under way finishes)."""
    async with ctx.transaction() as db:
        row = await _mine(db, ctx, webhook_id, lock=True)
        await db.delete(row)
    return webhook_id


async def rotate_secret(ctx: Context, *, webhook_id: uuid.UUID) -> tuple[WebhookRecord, str]:
    """A new signing secret (shown this once); deliveries are signed with the old one too for a day."""
    async with ctx.transaction() as db:
        row = await _mine(db, ctx, webhook_id, lock=True)
        row.previous_secret_salt, row.secret_salt = row.secret_salt, new_salt()
        row.rotated_at = row.updated_at = ctx.now()
        db.add(row)
        await db.flush()
        return _record(row), secret_of(ctx.tokens.secret, row.secret_salt)


def _ping(webhook_id: uuid.UUID, at: datetime) -> dict[str, Any]:
    return {
        "type": EVENT_NAMES[WebhookEventType.PING],
        "timestamp": at.isoformat(),
        "data": {"webhookId": encode_id("Webhook", webhook_id)},
    }


async def test_webhook(ctx: Context, *, webhook_id: uuid.UUID) -> DeliveryRecord:
    """Send a PING at once (also to a disabled webhook: it tells whether the endpoint is back) and answer how
    it went. It is in the delivery log, and is never retried."""
    now = ctx.now()
    async with ctx.transaction() as db:
        row = await _mine(db, ctx, webhook_id)
        delivery = WebhookDelivery(
            webhook_id=row.id,
            message_id=uuid.uuid4(),
            event_type=WebhookEventType.PING.value,
            payload=_ping(row.id, now),
            status=DeliveryStatus.SENDING.value,
            created_at=now,
            attempted_at=now,
        )
        db.add(delivery)
        await db.flush()
        claimed = _Claimed(row.url, delivery.payload, delivery.message_id, row.secret_salt,
                           row.previous_secret_salt, row.rotated_at)  # fmt: skip
    return await _attempt_once(ctx, delivery.id, claimed)


async def retry_delivery(ctx: Context, *, delivery_id: uuid.UUID) -> DeliveryRecord:
    """One more attempt at a delivered or failed delivery, at once, with its webhook-id; answered with how it
    went. One the worker is still attempting is BAD_USER_INPUT; one of a disabled webhook, WEBHOOK_DISABLED
    (a PING excepted)."""
    viewer = ctx.require_viewer()
    async with ctx.transaction() as db:
        found = await (await db.connection()).execute(
            select_columns(col(Webhook.enabled), col(WebhookDelivery.event_type))
            .join(Webhook, col(Webhook.id) == col(WebhookDelivery.webhook_id))
            .where(col(WebhookDelivery.id) == delivery_id, col(Webhook.owner_id) == viewer.user_id)
        )
        row = found.one_or_none()
        if row is None:
            raise NotFound.for_id("WebhookDelivery", encode_id("WebhookDelivery", delivery_id))
        enabled, event_type = row
        if not enabled and event_type != WebhookEventType.PING:
            raise WebhookDisabled("The webhook is disabled: enable it first (updateWebhook).")
        taken = (await run(db, _CLAIM, {"id": delivery_id})).one_or_none()
        if taken is None:
            raise BadUserInput("This delivery is still being attempted: wait for its outcome.", field="id")
    return await _attempt_once(ctx, delivery_id, _Claimed(*tuple(taken)))


@dataclass(frozen=True, slots=True)
class _Claimed:
    url: str
    payload: dict[str, Any]
    message_id: uuid.UUID
    salt: str
    previous_salt: str | None
    rotated_at: datetime | None


# A delivery taken for a one-off attempt: delivered or failed (the worker's pump is done with it), or left
# "sending" by a process that died during its attempt.
_CLAIM = text(
    """
UPDATE webhook_deliveries AS d SET status = 'sending', attempted_at = now()
FROM webhooks AS w
WHERE d.id = :id AND w.id = d.webhook_id
  AND (d.status IN ('delivered', 'failed')
       OR (d.status = 'sending' AND d.attempted_at < now() - interval '1 minute'))
RETURNING w.url, d.payload, d.message_id, w.secret_salt, w.previous_secret_salt, w.rotated_at
"""
)


async def _attempt_once(ctx: Context, delivery_id: uuid.UUID, claimed: _Claimed) -> DeliveryRecord:
    """Send a claimed delivery now, once, and record how it went."""
    secrets = signing_secrets(
        ctx.tokens.secret, claimed.salt, claimed.previous_salt, claimed.rotated_at, ctx.now()
    )
    sent = await _sender(ctx).send(
        claimed.url,
        orjson.dumps(claimed.payload),
        secrets=secrets,
        message_id=message_header(claimed.message_id),
    )
    async with ctx.transaction() as db:
        await run(db, outcome_sql(sent, status=None), {"id": delivery_id})
    found = await delivery(ctx, delivery_id)
    if found is None:  # deleted with its webhook meanwhile
        raise NotFound.for_id("WebhookDelivery", encode_id("WebhookDelivery", delivery_id))
    return found


def outcome_sql(sent: Sent, *, status: DeliveryStatus | None, next_attempt_in: float | None = None) -> Any:
    """The statement recording one attempt's outcome on a delivery row (parameter ``id``): ``status``, or
    DELIVERED / FAILED as it went; the next attempt ``next_attempt_in`` seconds from now, if any."""
    status = status or (DeliveryStatus.DELIVERED if sent.ok else DeliveryStatus.FAILED)
    return text(
        """
UPDATE webhook_deliveries SET status = :status, attempt = attempt + 1, attempted_at = now(),
    response_status = :response_status, duration_ms = :duration_ms, response_body = :body, error = :error,
    next_attempt_at = now() + make_interval(secs => CAST(:wait AS double precision))
WHERE id = :id
"""
    ).bindparams(
        status=status.value,
        wait=next_attempt_in,
        response_status=sent.status,
        duration_ms=sent.duration_ms,
        body=sent.body or None,
        error=(sent.error or "")[:300] or None,
    )


# -- Fan-out


def task_document(task: TaskRecord) -> dict[str, Any]:
    """A task as JSON for people and integrations (a webhook's data, a data export): the API's names and
    global ids."""
    return {
        "id": encode_id("Task", task.id),
        "ownerId": encode_id("User", task.owner_id),
        "title": task.title,
        "description": task.description,
        "status": task.status.value,
        "priority": task.priority.value,
        "dueAt": iso(task.due_at),
        "tags": list(task.tags),
        "createdAt": iso(task.created_at),
        "updatedAt": iso(task.updated_at),
        "completedAt": iso(task.completed_at),
        "projectId": encode_id("Project", task.project_id) if task.project_id is not None else None,
        "assigneeId": encode_id("User", task.assignee_id) if task.assignee_id is not None else None,
    }


def comment_document(comment: CommentRecord, task: TaskRecord | None) -> dict[str, Any]:
    """A comment as JSON for integrations, with the task it is on."""
    return {
        "id": encode_id("Comment", comment.id),
        "taskId": encode_id("Task", comment.task_id),
        "authorId": encode_id("User", comment.author_id) if comment.author_id is not None else None,
        "body": comment.body,
        "createdAt": iso(comment.created_at),
        "updatedAt": iso(comment.updated_at),
        "projectId": task_document(task)["projectId"] if task is not None else None,
        "task": task_document(task) if task is not None else None,
    }


def payload_of(
    event_type: WebhookEventType,
    at: datetime,
    task_id: uuid.UUID,
    task: TaskRecord | None,
    comment: CommentRecord | None = None,
) -> dict[str, Any]:
    """An event as a receiver gets it: ``{"type", "timestamp", "data"}`` (the Standard Webhooks shape)."""
    if comment is not None:
        data = comment_document(comment, task)
    else:
        data = task_document(task) if task is not None else {"id": encode_id("Task", task_id)}
    return {"type": EVENT_NAMES[event_type], "timestamp": at.isoformat(), "data": data}


def events_of_write(drafts: Sequence[EventDraft], at: datetime) -> list[WebhookEvent]:
    """What a task write tells webhooks: its event as each owner sees it (a task moved to another owner is
    DELETED for the previous one and CREATED for the new one), one webhook-id per event."""
    events = []
    for draft in drafts:
        if draft.audience == EVERYONE:
            continue
        kind = _OF_KIND[draft.kind]
        payload = payload_of(kind, at, draft.task_id, draft.task, draft.comment)
        events.append(WebhookEvent(uuid.UUID(draft.audience), kind, payload, uuid.uuid4()))
    return events


# One statement per write: each event, for each of its owner's enabled webhooks subscribed to it (a
# deactivated account's are not), in the write's order; the webhooks it reached (a pump job each).
_FAN_OUT = text(
    """
WITH event AS (
    SELECT * FROM unnest(CAST(:owners AS uuid[]), CAST(:types AS text[]), CAST(:payloads AS jsonb[]),
                         CAST(:messages AS uuid[]))
        WITH ORDINALITY AS e(owner_id, event_type, payload, message_id, n)
), added AS (
    INSERT INTO webhook_deliveries (id, webhook_id, message_id, event_type, payload, status)
    SELECT gen_random_uuid(), w.id, event.message_id, event.event_type, event.payload, 'pending'
    FROM event JOIN webhooks AS w ON w.owner_id = event.owner_id
    JOIN users AS owner ON owner.id = w.owner_id
    WHERE w.enabled AND owner.is_active AND event.event_type = ANY(w.events)
    ORDER BY event.n, w.id
    ON CONFLICT (webhook_id, message_id) DO NOTHING
    RETURNING webhook_id
)
SELECT DISTINCT webhook_id FROM added
"""
)


async def fan_out(db: AsyncSession, events: Sequence[WebhookEvent]) -> int:
    """Add the deliveries of ``events`` in ``db``'s transaction, and a job for each webhook they reach; how
    many webhooks. An event whose webhook-id a webhook already has is not added again (a job run twice)."""
    if not events:
        return 0
    connection = await db.connection()
    reached = await connection.execute(
        _FAN_OUT,
        {
            "owners": [event.owner_id for event in events],
            "types": [event.event_type.value for event in events],
            "payloads": [orjson.dumps(event.payload).decode() for event in events],
            "messages": [event.message_id for event in events],
        },
    )
    webhook_ids = [str(row[0]) for row in reached]
    await jobs.enqueue(db, *(jobs.WebhookJob(webhook_id) for webhook_id in webhook_ids))
    return len(webhook_ids)


_WAITING = text(
    """SELECT DISTINCT w.id FROM webhooks AS w JOIN webhook_deliveries AS d ON d.webhook_id = w.id
WHERE w.owner_id = :owner_id AND w.enabled AND d.status IN ('pending', 'retrying')"""
)


async def resume_owner(db: AsyncSession, owner_id: uuid.UUID) -> None:
    """A reactivated account's webhooks deliver what waited while it was deactivated (in ``db``'s
    transaction)."""
    waiting = await run(db, _WAITING, {"owner_id": owner_id})
    await jobs.enqueue(db, *(jobs.WebhookJob(str(row[0])) for row in waiting))


# -- Reads


WEBHOOK_ORDER = SortKey(
    "WEBHOOK_CREATED_AT", col(Webhook.created_at), lambda record: record.created_at, from_json=from_iso,
    to_json=iso,
)  # fmt: skip
DELIVERY_ORDER = SortKey(
    "DELIVERY_SEQ",
    col(WebhookDelivery.seq),
    lambda record: record.seq,
    from_json=lambda value: _integer(value),
)
_WEBHOOK_COLUMNS = (
    col(Webhook.id), col(Webhook.url), col(Webhook.events), col(Webhook.description), col(Webhook.enabled),
    col(Webhook.disabled_reason), col(Webhook.created_at),
)  # fmt: skip
_DELIVERY_COLUMNS = (
    col(WebhookDelivery.id), col(WebhookDelivery.seq), col(WebhookDelivery.message_id),
    col(WebhookDelivery.event_type), col(WebhookDelivery.attempt), col(WebhookDelivery.status),
    col(WebhookDelivery.response_status), col(WebhookDelivery.duration_ms),
    col(WebhookDelivery.response_body),
    col(WebhookDelivery.error), col(WebhookDelivery.created_at), col(WebhookDelivery.attempted_at),
    col(WebhookDelivery.next_attempt_at),
)  # fmt: skip
_OWNER = bindparam("owner_id", type_=Uuid())
_WEBHOOK = bindparam("webhook_id", type_=Uuid())


def _integer(value: object) -> int:
    if type(value) is not int:
        raise ValueError(value)
    return value


def _webhook_record(row: Sequence[Any]) -> WebhookRecord:
    webhook_id, url, events, description, enabled, reason, created_at = row
    return WebhookRecord(
        webhook_id, url, tuple(WebhookEventType(kind) for kind in events), description, enabled, reason,
        created_at,
    )  # fmt: skip


def _delivery_record(row: Sequence[Any]) -> DeliveryRecord:
    (delivery_id, seq, message_id, event_type, attempt, status, response_status, duration_ms, body, error,
     created_at, attempted_at, next_attempt_at) = row  # fmt: skip
    return DeliveryRecord(
        delivery_id, seq, message_id, WebhookEventType(event_type), attempt, DeliveryStatus(status),
        response_status, duration_ms, body, error, created_at, attempted_at, next_attempt_at,
    )  # fmt: skip


@functools.cache  # bounded: 2 x 2
def _webhooks_sql(walk_descending: bool, cursor: bool) -> Sql:
    where = [col(Webhook.owner_id) == _OWNER]
    return page_sql(
        WEBHOOK_ORDER,
        col(Webhook.id),
        _WEBHOOK_COLUMNS,
        where,
        walk_descending=walk_descending,
        cursor=cursor,
    )


@functools.cache
def _deliveries_sql(walk_descending: bool, cursor: bool) -> Sql:
    where = [col(WebhookDelivery.webhook_id) == _WEBHOOK]
    return page_sql(
        DELIVERY_ORDER, col(WebhookDelivery.id), _DELIVERY_COLUMNS, where, walk_descending=walk_descending,
        cursor=cursor,
    )  # fmt: skip


_COUNT_WEBHOOKS = compile_sql(
    select_columns(func.count()).select_from(Webhook).where(col(Webhook.owner_id) == _OWNER)
)
_COUNT_DELIVERIES = compile_sql(
    select_columns(func.count())
    .select_from(WebhookDelivery)
    .where(col(WebhookDelivery.webhook_id) == _WEBHOOK)
)
_WEBHOOK_BY_ID = compile_sql(
    select_columns(*_WEBHOOK_COLUMNS).where(
        col(Webhook.id) == bindparam("id", type_=Uuid()), col(Webhook.owner_id) == _OWNER
    )
)
_DELIVERY_BY_ID = compile_sql(
    select_columns(*_DELIVERY_COLUMNS)
    .join(Webhook, col(Webhook.id) == col(WebhookDelivery.webhook_id))
    .where(col(WebhookDelivery.id) == bindparam("id", type_=Uuid()), col(Webhook.owner_id) == _OWNER)
)


async def list_webhooks(ctx: Context, *, page: PageRequest) -> Listing[WebhookRecord]:
    """The viewer's webhooks, newest first. Read on the primary, as everything of webhooks: the worker
    changes them (a disabled endpoint), and the change must show at once."""
    viewer = ctx.require_viewer()
    window = keyset(WEBHOOK_ORDER, page, descending=True)
    sql = _webhooks_sql(window.walk_descending, window.cursor is not None)
    values = {"owner_id": viewer.user_id}
    return await read_page(
        ctx.reads.primary, WEBHOOK_ORDER, page, window, sql, _COUNT_WEBHOOKS, values, _webhook_record
    )


async def get_webhook(ctx: Context, webhook_id: uuid.UUID) -> WebhookRecord | None:
    viewer = ctx.require_viewer()
    row = await ctx.reads.primary.fetchrow(_WEBHOOK_BY_ID, {"id": webhook_id, "owner_id": viewer.user_id})
    return None if row is None else _webhook_record(row)


async def list_deliveries(
    ctx: Context, *, webhook_id: uuid.UUID, page: PageRequest
) -> Listing[DeliveryRecord]:
    """A webhook's deliveries, newest first (the webhook was read as the viewer's)."""
    window = keyset(DELIVERY_ORDER, page, descending=True, query=str(webhook_id))
    sql = _deliveries_sql(window.walk_descending, window.cursor is not None)
    values = {"webhook_id": webhook_id}
    return await read_page(
        ctx.reads.primary, DELIVERY_ORDER, page, window, sql, _COUNT_DELIVERIES, values, _delivery_record
    )


async def delivery(ctx: Context, delivery_id: uuid.UUID) -> DeliveryRecord | None:
    viewer = ctx.require_viewer()
    row = await ctx.reads.primary.fetchrow(_DELIVERY_BY_ID, {"id": delivery_id, "owner_id": viewer.user_id})
    return None if row is None else _delivery_record(row)
