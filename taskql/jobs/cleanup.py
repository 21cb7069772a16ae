"""The periodic ``cleanup`` job: what has served its purpose leaves PostgreSQL.

Refresh tokens a day past their expiry (until then a consumed one still reveals a replay), sessions a day
after they ended (revoked, or with no refresh token left), mailed tokens a day after they expired or were
used, outbox rows published longer ago than the events' retention, webhook deliveries done (delivered or
failed) a month ago, and the queue's own log and statistics past a week. In batches, so no statement
holds locks for long.
"""

from __future__ import annotations

import asyncpg

BATCH = 5000
DAY = 86_400.0
QUEUE_LOG_SECONDS = 7 * DAY
WEBHOOK_LOG_SECONDS = 30 * DAY

# Each deletes at most $2 rows that have been of no use for $1 seconds.
STATEMENTS = {
    "refresh_tokens": """DELETE FROM refresh_tokens WHERE id IN (
        SELECT id FROM refresh_tokens WHERE expires_at < now() - make_interval(secs => $1) LIMIT $2)""",
    "auth_sessions": """DELETE FROM auth_sessions WHERE id IN (
        SELECT s.id FROM auth_sessions s
        WHERE s.revoked_at < now() - make_interval(secs => $1)
           OR (s.created_at < now() - make_interval(secs => $1)
               AND NOT EXISTS (SELECT 1 FROM refresh_tokens r WHERE r.session_id = s.id))
        LIMIT $2)""",
    "account_tokens": """DELETE FROM account_tokens WHERE id IN (
        SELECT id FROM account_tokens
        WHERE expires_at < now() - make_interval(secs => $1) OR used_at < now() - make_interval(secs => $1)
        LIMIT $2)""",
    "outbox": """DELETE FROM outbox WHERE id IN (
        SELECT id FROM outbox WHERE published_at < now() - make_interval(secs => $1) ORDER BY id LIMIT $2)""",
    "webhook_deliveries": """DELETE FROM webhook_deliveries WHERE id IN (
        SELECT id FROM webhook_deliveries
        WHERE status IN ('delivered', 'failed') AND created_at < now() - make_interval(secs => $1)
        LIMIT $2)""",
    "pgqueuer_log": """DELETE FROM pgqueuer_log WHERE id IN (
        SELECT id FROM pgqueuer_log WHERE created < now() - make_interval(secs => $1) LIMIT $2)""",
    "pgqueuer_statistics": """DELETE FROM pgqueuer_statistics WHERE id IN (
        SELECT id FROM pgqueuer_statistics WHERE created < now() - make_interval(secs => $1) LIMIT $2)""",
}


async def clean_up(pool: asyncpg.Pool, *, outbox_retention_seconds: float) -> dict[str, int]:
    """Delete what expired; how many rows, by table."""
    ages = {
        "outbox": outbox_retention_seconds,
        "webhook_deliveries": WEBHOOK_LOG_SECONDS,
        "pgqueuer_log": QUEUE_LOG_SECONDS,
        "pgqueuer_statistics": QUEUE_LOG_SECONDS,
    }
    removed: dict[str, int] = {}
    for table, statement in STATEMENTS.items():
        removed[table] = 0
        while True:
            status = await pool.execute(statement, float(ages.get(table, DAY)), BATCH)
            count = int(status.split()[-1])
            removed[table] += count
            if count < BATCH:
                break
    return removed
