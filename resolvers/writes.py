"""The write log: one call per write records, in the write's own transaction, everything it implies
outside PostgreSQL (an outbox row: ``models.outbox``).

What a write implies: the cache tags it changed (``core.cache_tags``), the task events it tells (one per
audience, sharing one cursor), and, among its tags, those that end sessions or change rights (``user:``,
``session:``), which close WebSockets. Recorded with the data, these are never lost: the request publishes
them after COMMIT, before it answers, and the app's relay publishes whatever a crash or a Redis outage left
behind (``taskql.outbox.relay``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from models import outbox
from resolvers.events import EVERYONE, EventDraft, encode_event

CONTROL_PREFIXES = ("user:", "session:")  # tags whose change ends sessions or changes rights


@dataclass(frozen=True, slots=True)
class Written:
    """One recorded write: its outbox row, and what the request publishes of it."""

    id: int
    tags: tuple[str, ...]
    events: dict[str, str]  # audience -> payload (the admins' audience first)
    control: tuple[str, ...]
    # Older rows still unpublished when this one was written, oldest first: published before it, so that
    # its events do not overtake theirs. ``overflow``: more than ``outbox.BACKLOG_LIMIT`` (the relay's job).
    before: tuple[Written, ...] = ()
    overflow: bool = False

    @classmethod
    def of(
        cls, row_id: int, effects: dict[str, Any], before: Sequence[tuple[int, dict[str, Any]]] = ()
    ) -> Written:
        return cls(
            row_id,
            tuple(effects.get("tags", ())),
            dict(effects.get("events") or {}),
            tuple(effects.get("control", ())),
            tuple(cls.of(older_id, older) for older_id, older in before[: outbox.BACKLOG_LIMIT]),
            len(before) > outbox.BACKLOG_LIMIT,
        )


def effects_of(tags: Iterable[str], drafts: Sequence[EventDraft], at: datetime) -> dict[str, Any]:
    """The outbox row's ``effects`` of one write."""
    unique = list(dict.fromkeys(tags))
    ordered = sorted(drafts, key=lambda draft: draft.audience != EVERYONE)  # the admins' stream first
    effects: dict[str, Any] = {
        "tags": unique,
        "control": [tag for tag in unique if tag.startswith(CONTROL_PREFIXES)],
    }
    if ordered:
        effects["events"] = {draft.audience: encode_event(draft, at) for draft in ordered}
    return effects


async def record(
    db: AsyncSession, tags: Iterable[str], drafts: Sequence[EventDraft], at: datetime
) -> Written:
    """Append the write's outbox row in ``db``'s transaction (call it before the transaction ends)."""
    effects = effects_of(tags, drafts, at)
    row_id, before = await outbox.append(db, effects)
    return Written.of(row_id, effects, before)


def in_order(written: Sequence[Written]) -> list[Written]:
    """What a request publishes: each write's older pending rows, then the write, each row once."""
    ordered: dict[int, Written] = {}
    for write in written:
        for row in (*write.before, write):
            ordered.setdefault(row.id, row)
    return list(ordered.values())
