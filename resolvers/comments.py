"""Comments on tasks: plain text, 1 to 10,000 characters. Whoever may see a task may comment on it (a
project's VIEWERs too); the author edits and deletes their comment, the project's OWNER (and an admin) may
delete any. Each is told as an event to everyone who sees the task, kept in its history, and a mention
(``<@User-ID>``, the user's global ID) of a member notifies them."""

from __future__ import annotations

import functools
import re
import uuid
from typing import TYPE_CHECKING, Annotated

from pydantic import StringConstraints
from sqlalchemy import Uuid, bindparam, func, select
from sqlmodel import col

from core import cache_tags
from core.errors import BadUserInput, Forbidden, NotFound
from core.ids import decode_id, encode_id
from core.sql import Sql, compile_sql
from models import COMMENT_COLUMNS, Comment, CommentRecord, NotificationKind, ProjectRole, TaskRecord
from resolvers.activity import ActivityKind, log
from resolvers.audiences import Members, audience
from resolvers.events import TaskEventKind, drafts_for_write
from resolvers.inputs import NO_NUL, validate_argument
from resolvers.notifications import notify
from resolvers.pagination import Listing, PageRequest, SortKey, from_iso, iso, keyset, page_sql, read_page
from resolvers.tasks import locked_task, viewer_roles
from resolvers.visibility import task_access, visible_task

if TYPE_CHECKING:
    from sqlmodel.ext.asyncio.session import AsyncSession

    from auth.viewer import Viewer
    from resolvers.context import Context

MAX_MENTIONS = 20
_MENTION = re.compile(r"<@([A-Za-z0-9+/=_-]{1,100})>")


CommentBody = Annotated[str, StringConstraints(min_length=1, max_length=10_000), NO_NUL]


def _body(body: str) -> str:
    text: str = validate_argument(CommentBody, body, argument="body")
    return text


def mentioned(body: str) -> list[uuid.UUID]:
    """The users a comment mentions (``<@id>``), in order, each once; anything not a user's ID is text."""
    found: dict[uuid.UUID, None] = {}
    for match in _MENTION.finditer(body):
        try:
            type_name, key = decode_id(match.group(1))
        except BadUserInput:  # not an ID: plain text
            continue
        if type_name == "User":
            found[key] = None
    return list(found)[:MAX_MENTIONS]


async def _task_for_comment(
    db: AsyncSession, viewer: Viewer, task_id: uuid.UUID
) -> tuple[TaskRecord, Members]:
    """The task (locked, with its project's members), if the viewer may see it: NOT_FOUND otherwise."""
    task, members = await locked_task(db, task_id)
    record = TaskRecord.of(task) if task is not None else None
    if record is None or task_access(viewer, record, viewer_roles(members, viewer, record)) is None:
        raise NotFound.for_id("Task", encode_id("Task", task_id))
    return record, members


async def _tell(
    ctx: Context,
    db: AsyncSession,
    kind: TaskEventKind,
    task: TaskRecord,
    members: Members,
    comment: CommentRecord,
) -> None:
    seen = audience(task, members)
    await ctx.record(
        db, cache_tags.seen_by(seen), drafts_for_write(kind, task.id, task, seen, seen, comment=comment)
    )


async def _notify_mentions(
    db: AsyncSession, viewer: Viewer, task: TaskRecord, seen: frozenset[uuid.UUID], comment: CommentRecord
) -> None:
    """Mentions of people who see the task (not the author) notify them, in user-id order (each takes the
    user's inbox lock: the same order everywhere never deadlocks)."""
    for user_id in sorted(set(mentioned(comment.body)) & seen - {viewer.user_id}):
        await notify(
            db,
            user_id,
            NotificationKind.MENTIONED,
            title=f"Mentioned on: {task.title}"[:300],
            body=comment.body[:1000],
            dedupe_key=f"mention:{comment.id}:{comment.updated_at.isoformat()}",
            task_id=task.id,
        )


async def add_comment(ctx: Context, *, task_id: uuid.UUID, body: str) -> CommentRecord:
    viewer = ctx.require_viewer()
    text = _body(body)
    now = ctx.now()
    async with ctx.transaction() as db:
        task, members = await _task_for_comment(db, viewer, task_id)
        comment = Comment(
            task_id=task_id, author_id=viewer.user_id, body=text, created_at=now, updated_at=now
        )
        db.add(comment)
        await db.flush()
        record = CommentRecord.of(comment)
        await log(db, task_id, viewer.user_id, ActivityKind.COMMENT_ADDED, [_change(None, record)], now)
        await _tell(ctx, db, TaskEventKind.COMMENT_ADDED, task, members, record)
        await _notify_mentions(db, viewer, task, audience(task, members), record)
    return record


def _change(before: CommentRecord | None, after: CommentRecord | None) -> dict[str, str | None]:
    return {
        "field": "comment",
        "from": encode_id("Comment", before.id) if before is not None else None,
        "to": encode_id("Comment", after.id) if after is not None else None,
    }


async def _comment_for_change(
    db: AsyncSession, viewer: Viewer, comment_id: uuid.UUID, *, deleting: bool
) -> tuple[Comment, TaskRecord, Members]:
    found = await db.get(Comment, comment_id)
    if found is None:
        raise NotFound.for_id("Comment", encode_id("Comment", comment_id))
    try:
        task, members = await _task_for_comment(db, viewer, found.task_id)
    except NotFound:  # a comment on a task the viewer does not see is answered as a missing comment
        raise NotFound.for_id("Comment", encode_id("Comment", comment_id)) from None
    comment = await db.get(Comment, comment_id, with_for_update=True, populate_existing=True)
    if comment is None:
        raise NotFound.for_id("Comment", encode_id("Comment", comment_id))
    may = viewer.is_admin or comment.author_id == viewer.user_id
    if deleting and not may and task.project_id is not None:
        may = members.get(viewer.user_id) is ProjectRole.OWNER
    if not may:
        what = "the author or the project's OWNER may delete" if deleting else "only its author may edit"
        raise Forbidden(f"Not your comment: {what} it.")
    return comment, task, members


async def update_comment(ctx: Context, *, comment_id: uuid.UUID, body: str) -> CommentRecord:
    viewer = ctx.require_viewer()
    text = _body(body)
    now = ctx.now()
    async with ctx.transaction() as db:
        comment, task, members = await _comment_for_change(db, viewer, comment_id, deleting=False)
        before = CommentRecord.of(comment)
        comment.body = text
        comment.updated_at = now
        db.add(comment)
        await db.flush()
        record = CommentRecord.of(comment)
        await log(db, task.id, viewer.user_id, ActivityKind.COMMENT_UPDATED, [_change(before, record)], now)
        await _tell(ctx, db, TaskEventKind.COMMENT_UPDATED, task, members, record)
        await _notify_mentions(db, viewer, task, audience(task, members), record)
    return record


async def delete_comment(ctx: Context, *, comment_id: uuid.UUID) -> uuid.UUID:
    viewer = ctx.require_viewer()
    now = ctx.now()
    async with ctx.transaction() as db:
        comment, task, members = await _comment_for_change(db, viewer, comment_id, deleting=True)
        record = CommentRecord.of(comment)
        await db.delete(comment)
        await db.flush()
        await log(db, task.id, viewer.user_id, ActivityKind.COMMENT_DELETED, [_change(record, None)], now)
        await _tell(ctx, db, TaskEventKind.COMMENT_DELETED, task, members, record)
    return comment_id


# -- Reads

COMMENT_ORDER = SortKey(
    "COMMENT_CREATED_AT",
    col(Comment.created_at),
    lambda comment: comment.created_at,
    from_json=from_iso,
    to_json=iso,
)
_TASK = bindparam("task_id", type_=Uuid())


@functools.cache  # bounded: 2 x 2
def _page_sql(walk_descending: bool, cursor: bool) -> Sql:
    where = [col(Comment.task_id) == _TASK]
    return page_sql(
        COMMENT_ORDER, col(Comment.id), COMMENT_COLUMNS, where, walk_descending=walk_descending, cursor=cursor
    )


_COUNT_SQL = compile_sql(
    select(func.count()).select_from(Comment).where(col(Comment.task_id) == _TASK), constants=False
)


async def list_comments(ctx: Context, *, task_id: uuid.UUID, page: PageRequest) -> Listing[CommentRecord]:
    """The task's comments, oldest first (a conversation reads down)."""
    await visible_task(ctx, ctx.require_viewer(), task_id)
    window = keyset(COMMENT_ORDER, page, descending=False)
    sql = _page_sql(window.walk_descending, window.cursor is not None)
    values = {"task_id": task_id}
    return await read_page(
        ctx.reader, COMMENT_ORDER, page, window, sql, _COUNT_SQL, values, CommentRecord.from_row
    )


_COMMENT_SQL = compile_sql(select(*COMMENT_COLUMNS).where(col(Comment.id) == bindparam("id", type_=Uuid())))


async def get_comment(ctx: Context, comment_id: uuid.UUID) -> CommentRecord | None:
    """A comment, if the viewer may see its task."""
    rows = await ctx.reader.fetch(_COMMENT_SQL, {"id": comment_id})
    if not rows:
        return None
    comment = CommentRecord.from_row(rows[0])
    try:
        await visible_task(ctx, ctx.require_viewer(), comment.task_id)
    except NotFound:
        return None
    return comment
