"""The live inbox (``notificationEvents``) against a real server process, over a real WebSocket.

Notifications are made as the worker makes them: ``notify()`` in a transaction of this process, committed
here. The server's recheck period is a minute (but in the test of the recheck itself): whatever arrives
within the tests' few seconds was woken by PostgreSQL's NOTIFY or by the listener's reconnection.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from core.ids import decode_typed_id
from models import NotificationKind
from resolvers.inbox import encode_cursor
from resolvers.notifications import notify
from taskql.data.engine import async_url
from taskql.realtime.inbox import APPLICATION_NAME
from tests.factories import Account, register
from tests.graphql_client import GraphQLClient, operation
from tests.processes import servers_on
from tests.services import Services
from tests.ws_client import Subscriber

NOTIFICATION_EVENTS = operation("NotificationEvents")
START = encode_cursor(0)  # before a user's first notification


@pytest.fixture(scope="module")
def server(database: Services, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("inbox")
    with servers_on(database.database_url, database.redis_url, folder, INBOX_RECHECK_SECONDS="60") as bases:
        yield bases[0]


@pytest.fixture
async def gql(server: str) -> AsyncIterator[GraphQLClient]:
    async with httpx.AsyncClient(base_url=server, timeout=30) as http:
        yield GraphQLClient(http)


@pytest.fixture
async def sessions(database: Services) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine: AsyncEngine = create_async_engine(async_url(database.database_url))
    try:
        yield async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
    finally:
        await engine.dispose()


@pytest.fixture
async def admin_connection(database: Services) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(database.dsn)
    try:
        yield connection
    finally:
        await connection.close()


@pytest.fixture
async def people(gql: GraphQLClient) -> dict[str, Account]:
    return {name: await register(gql, email=f"{name}@example.com", name=name) for name in ("alice", "bob")}


def user_key(account: Account) -> uuid.UUID:
    key = decode_typed_id(account.id, "User")
    assert key is not None
    return key


def ws(base: str) -> str:
    return base.replace("http://", "ws://") + "/graphql"


async def inbox(base: str, account: Account, after: str | None = START) -> Subscriber:
    subscriber = await Subscriber.open(ws(base), {"authorization": f"Bearer {account.token}"})
    await subscriber.subscribe({} if after is None else {"after": after}, query=NOTIFICATION_EVENTS)
    return subscriber


async def received(subscriber: Subscriber, timeout: float = 10) -> dict[str, Any]:
    message = await subscriber.receive(timeout)
    assert message["type"] == "next", message
    assert "errors" not in message["payload"], message
    notification: dict[str, Any] = message["payload"]["data"]["notificationEvents"]
    return notification


async def titles(subscriber: Subscriber, count: int) -> list[str]:
    return [(await received(subscriber))["title"] for _ in range(count)]


async def made(db: AsyncSession, account: Account, title: str) -> uuid.UUID | None:
    return await notify(
        db, user_key(account), NotificationKind.TASK_DUE_SOON, title=title, body="soon", dedupe_key=title
    )


async def notified(sessions: async_sessionmaker[AsyncSession], account: Account, *titles: str) -> None:
    """One committed transaction per title, as the worker's jobs make them."""
    for title in titles:
        async with sessions() as db, db.begin():
            assert await made(db, account, title) is not None


async def until(condition: Callable[[], Awaitable[bool]], timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while not await condition():  # noqa: ASYNC110 (a condition in PostgreSQL)
            await asyncio.sleep(0.02)


def error_codes(message: dict[str, Any]) -> list[tuple[str, str | None]]:
    errors = message["payload"] if message["type"] == "error" else message["payload"].get("errors")
    return [(error["extensions"]["code"], error["extensions"].get("field")) for error in errors]


async def test_a_notification_reaches_its_users_subscription_live_and_no_one_elses(
    server: str, people: dict[str, Account], sessions: async_sessionmaker[AsyncSession]
) -> None:
    alice, bob = await inbox(server, people["alice"]), await inbox(server, people["bob"])
    await notified(sessions, people["alice"], "for alice")
    notification = await received(alice)
    assert (notification["title"], notification["kind"], notification["readAt"]) == (
        "for alice",
        "TASK_DUE_SOON",
        None,
    )
    assert notification["cursor"] == encode_cursor(1)
    await notified(sessions, people["bob"], "for bob")
    assert await titles(bob, 1) == ["for bob"]  # alice's would have come first
    assert await bob.silent_for(0.3)


async def test_without_a_cursor_only_notifications_made_after_subscribing_arrive(
    server: str, people: dict[str, Account], sessions: async_sessionmaker[AsyncSession]
) -> None:
    await notified(sessions, people["alice"], "before")
    subscriber = await inbox(server, people["alice"], after=None)
    # The client cannot see when the server has read where it starts: it notifies until something arrives.
    # The first to arrive is one made after subscribing, never the one before it.
    async with asyncio.timeout(30):
        for attempt in range(300):
            await notified(sessions, people["alice"], f"after {attempt}")
            try:
                first = await received(subscriber, timeout=0.1)
            except TimeoutError:
                continue
            break
    assert first["title"].startswith("after ")
    made_after = int(first["title"].removeprefix("after "))
    # Then each later one, once and in order.
    assert await titles(subscriber, attempt - made_after) == [
        f"after {n}" for n in range(made_after + 1, attempt + 1)
    ]


async def test_resuming_with_a_cursor_delivers_the_missed_ones_in_order_once_then_live_ones(
    server: str, people: dict[str, Account], sessions: async_sessionmaker[AsyncSession]
) -> None:
    alice = people["alice"]
    first = await inbox(server, alice)
    await notified(sessions, alice, "seen")
    cursor = (await received(first))["cursor"]
    await first.close()
    missed = [f"missed {n}" for n in range(5)]
    await notified(sessions, alice, *missed)

    resumed = await inbox(server, alice, after=cursor)
    assert await titles(resumed, 5) == missed
    await notified(sessions, alice, "live 0")
    assert await titles(resumed, 1) == ["live 0"]
    await notified(sessions, alice, "live 1")
    last = await received(resumed)  # nothing twice at the seam: the next one is the next made
    assert (last["title"], last["cursor"]) == ("live 1", encode_cursor(8))


async def test_a_resume_reads_a_long_absence_in_pages_without_losing_one(
    server: str, people: dict[str, Account], sessions: async_sessionmaker[AsyncSession]
) -> None:
    alice = people["alice"]
    async with sessions() as db, db.begin():  # more than a page (resolvers.inbox.PAGE), in one transaction
        for number in range(250):
            await made(db, alice, f"n{number}")
    subscriber = await inbox(server, alice)
    assert await titles(subscriber, 250) == [f"n{number}" for number in range(250)]
    await notified(sessions, alice, "then")
    assert await titles(subscriber, 1) == ["then"]


async def test_two_notifying_transactions_at_once_arrive_in_commit_order(
    server: str,
    people: dict[str, Account],
    sessions: async_sessionmaker[AsyncSession],
    admin_connection: asyncpg.Connection,
) -> None:
    """The first to number a user's notification holds the number until it commits: a later one cannot
    commit a greater number first, which a subscriber past it would never read."""
    alice = people["alice"]
    subscriber = await inbox(server, alice)
    async with sessions() as first, sessions() as second:
        await first.begin()
        await second.begin()
        pid = (await second.exec(text("SELECT pg_backend_pid()"))).scalar_one()  # type: ignore[call-overload]
        await made(first, alice, "first")

        async def second_commits() -> None:
            await made(second, alice, "second")
            await second.commit()

        racing = asyncio.create_task(second_commits())

        async def waits_or_done() -> bool:
            state = await admin_connection.fetchval(
                "SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1", pid
            )
            return racing.done() or state == "Lock"

        await until(waits_or_done)
        committed: list[str] = []
        if racing.done():  # it did not wait: its commit comes first, and is delivered
            committed.append("second")
            arrived = await titles(subscriber, 1)
            await first.commit()
            committed.append("first")
            arrived += await titles(subscriber, 1)
        else:
            await first.commit()
            await racing
            committed += ["first", "second"]
            arrived = await titles(subscriber, 2)
    assert arrived == committed
    assert committed == ["first", "second"]  # the second waited for the first


async def test_a_notification_already_in_the_inbox_takes_no_number(
    server: str, people: dict[str, Account], sessions: async_sessionmaker[AsyncSession]
) -> None:
    alice = people["alice"]
    subscriber = await inbox(server, alice)
    await notified(sessions, alice, "once")
    async with sessions() as db, db.begin():
        assert await made(db, alice, "once") is None  # a job that ran twice
    await notified(sessions, alice, "next")
    arrived = [await received(subscriber) for _ in range(2)]
    assert [(n["title"], n["cursor"]) for n in arrived] == [
        ("once", encode_cursor(1)),
        ("next", encode_cursor(2)),
    ]


async def test_a_notification_made_while_the_listener_is_cut_off_arrives_when_it_reconnects(
    server: str,
    people: dict[str, Account],
    sessions: async_sessionmaker[AsyncSession],
    admin_connection: asyncpg.Connection,
) -> None:
    alice = people["alice"]
    subscriber = await inbox(server, alice)
    await notified(sessions, alice, "before")
    assert await titles(subscriber, 1) == ["before"]
    async with sessions() as db, db.begin():
        await made(db, alice, "while cut off")
        # Its listening connection ended (and waited for) before this transaction's NOTIFY is sent.
        ended = await db.exec(  # type: ignore[call-overload]
            text(
                "SELECT count(pg_terminate_backend(pid, 5000)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND application_name = :name"
            ),
            params={"name": APPLICATION_NAME},
        )
        assert ended.scalar_one() >= 1
    assert await titles(subscriber, 1) == ["while cut off"]  # before anything else is made
    await notified(sessions, alice, "after")  # and the new connection listens
    assert await titles(subscriber, 1) == ["after"]


async def test_a_bad_cursor_is_bad_user_input_on_after(server: str, people: dict[str, Account]) -> None:
    alice = people["alice"]
    # Empty, not base64, a negative number, no number, a task event's, "inbox:1x", too long, past bigint.
    bad = [
        "",
        "nope!",
        encode_cursor(-1),
        "aW5ib3g6",
        "dGFzazox",
        "aW5ib3g6MXg",
        "x" * 100,
        encode_cursor(2**63),
    ]
    for after in [*bad, encode_cursor(1)]:  # the last: ahead of alice's inbox (another user's)
        subscriber = await inbox(server, alice, after=after)
        assert error_codes(await subscriber.receive()) == [("BAD_USER_INPUT", "after")], after
        await subscriber.close()


async def test_a_logout_closes_the_inbox_socket(
    server: str, gql: GraphQLClient, people: dict[str, Account], sessions: async_sessionmaker[AsyncSession]
) -> None:
    alice = people["alice"]
    subscriber = await inbox(server, alice)
    await notified(sessions, alice, "hello")
    assert await titles(subscriber, 1) == ["hello"]
    (await gql.run("Logout", {"refreshToken": alice.refresh_token}, token=alice.token)).ok()
    assert (await subscriber.closed(timeout=3)).code == 4403  # at once (the control channel)


async def test_a_wake_up_that_never_came_is_made_up_by_the_recheck(
    database: Services,
    tmp_path: Path,
    sessions: async_sessionmaker[AsyncSession],
    admin_connection: asyncpg.Connection,
) -> None:
    with servers_on(database.database_url, database.redis_url, tmp_path, INBOX_RECHECK_SECONDS="1") as bases:
        async with httpx.AsyncClient(base_url=bases[0], timeout=30) as http:
            alice = await register(GraphQLClient(http), email="alice@example.com")
        subscriber = await inbox(bases[0], alice)
        await notified(sessions, alice, "announced")
        assert await titles(subscriber, 1) == ["announced"]
        # Numbered and inserted as notify() does, without its NOTIFY: as if the message were lost.
        await admin_connection.execute(
            "WITH n AS (UPDATE notification_settings SET last_notification_seq = last_notification_seq + 1"
            " WHERE user_id = $1 RETURNING last_notification_seq)"
            " INSERT INTO notifications (id, user_id, kind, title, body, dedupe_key, seq)"
            " SELECT gen_random_uuid(), $1, 'TASK_DUE_SOON', 'unannounced', '', 'unannounced',"
            " last_notification_seq FROM n",
            user_key(alice),
        )
        assert await titles(subscriber, 1) == ["unannounced"]
        await subscriber.close()


def test_the_trusted_document_is_the_subscription() -> None:
    manifest = json.loads((Path(__file__).parent.parent / "graphql" / "manifest.json").read_text())
    entry = next(op for op in manifest["operations"] if op["name"] == "NotificationEvents")
    assert (entry["type"], entry["body"]) == ("subscription", NOTIFICATION_EVENTS)
