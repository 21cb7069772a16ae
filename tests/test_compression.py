"""Compressed answers: large query answers gzipped for clients that accept it, misses and cache hits alike,
with their own ETags; never small answers, mutations' answers (tokens), or with COMPRESSION off."""

from __future__ import annotations

import gzip
import json
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest
from redis.asyncio import Redis

from core.settings import Settings
from taskql.cache.store import ENTRY_PREFIX
from taskql.http.compression import accepts_gzip
from tests.conftest import client_for
from tests.factories import PASSWORD, Account
from tests.graphql_client import operation
from tests.services import Services

PAGE = {"query": operation("TaskPage"), "variables": {"first": 100}}
GZIP = {"accept-encoding": "gzip"}


@dataclass
class Sent:
    """A response as it came over the wire: its headers and its body, not decoded."""

    status: int
    headers: httpx.Headers
    raw: bytes

    @property
    def encoding(self) -> str:
        return str(self.headers.get("content-encoding", "identity"))

    def json(self) -> Any:
        return json.loads(gzip.decompress(self.raw) if self.encoding == "gzip" else self.raw)

    def data(self) -> Any:
        body = self.json()
        assert not body.get("errors"), body
        return body["data"]


async def send(
    http: httpx.AsyncClient, method: str, *, token: str | None = None, headers: dict[str, str], **kwargs: Any
) -> Sent:
    """``method`` /graphql with exactly ``headers`` for Accept-Encoding (none unless they name one: httpx's
    own default is taken out)."""
    request = http.build_request(method, "/graphql", **kwargs)
    del request.headers["accept-encoding"]
    if token is not None:
        request.headers["authorization"] = f"Bearer {token}"
    request.headers.update(headers)
    response = await http.send(request, stream=True)
    try:
        raw = b"".join([chunk async for chunk in response.aiter_raw()])
    finally:
        await response.aclose()
    return Sent(response.status_code, response.headers, raw)


async def add_tasks(database: Services, account: Account, count: int) -> None:
    connection = await asyncpg.connect(database.dsn)
    try:
        owner = await connection.fetchval("SELECT id FROM users WHERE email = $1", account.email)
        await connection.executemany(
            "INSERT INTO tasks (id, owner_id, title, description, status, priority, tags, created_at,"
            " updated_at) VALUES ($1, $2, $3, $4, 'TODO', 'MEDIUM', $5, now(), now())",
            [(uuid.uuid4(), owner, f"Task {n}", "", ["work", f"tag{n % 7}"]) for n in range(count)],
        )
    finally:
        await connection.close()


@pytest.fixture
async def page_of_100(database: Services, alice: Account) -> Account:
    """Alice with 100 tasks (written in SQL, before any answer is cached)."""
    await add_tasks(database, alice, 100)
    return alice


@pytest.mark.parametrize(
    ("header", "accepted"),
    [
        (None, False),
        ("", False),
        ("gzip", True),
        ("GZIP;q=0.5", True),
        ("x-gzip", True),
        ("br, gzip, deflate", True),
        ("*", True),
        ("identity", False),
        ("gzip;q=0", False),
        ("gzip;q=0, *", False),
        ("*;q=0", False),
        ("br", False),
    ],
)
def test_gzip_is_accepted_only_when_the_accept_encoding_header_allows_it(
    header: str | None, accepted: bool
) -> None:
    assert accepts_gzip(header) is accepted


async def test_a_100_row_page_comes_gzipped_with_the_same_answer_on_a_miss_and_a_hit(
    http: httpx.AsyncClient, page_of_100: Account
) -> None:
    token = page_of_100.token
    miss = await send(http, "POST", json=PAGE, token=token, headers=GZIP)
    hit = await send(http, "POST", json=PAGE, token=token, headers=GZIP)
    plain = await send(http, "POST", json=PAGE, token=token, headers={})
    assert [r.headers["x-cache"] for r in (miss, hit, plain)] == ["MISS", "HIT", "HIT"]
    assert (miss.encoding, hit.encoding, plain.encoding) == ("gzip", "gzip", "identity")
    assert len(plain.data()["tasks"]["edges"]) == 100
    assert miss.data() == hit.data() == plain.data()
    assert "cost" in miss.json()["extensions"]  # the miss's own report survives compression
    assert len(hit.raw) < len(plain.raw) / 4, (len(hit.raw), len(plain.raw))
    for response in (miss, hit, plain):
        assert int(response.headers["content-length"]) == len(response.raw)
        assert "accept-encoding" in response.headers["vary"]


async def test_a_miss_sent_as_it_is_is_kept_gzipped_for_the_hits_that_accept_gzip(
    http: httpx.AsyncClient, page_of_100: Account, services: Services
) -> None:
    token = page_of_100.token
    miss = await send(http, "POST", json=PAGE, token=token, headers={})
    hit = await send(http, "POST", json=PAGE, token=token, headers=GZIP)
    assert (miss.headers["x-cache"], miss.encoding) == ("MISS", "identity")
    assert (hit.headers["x-cache"], hit.encoding) == ("HIT", "gzip")
    assert hit.data() == miss.data()
    redis = Redis.from_url(services.redis_url)
    try:
        keys = [key async for key in redis.scan_iter(match=ENTRY_PREFIX + "*")]
        assert len(keys) == 1
        body, gzipped = await redis.hmget(keys[0], "b", "z")
    finally:
        await redis.aclose()
    assert gzipped == hit.raw  # made once, when the entry was stored: a hit sends it as it is
    assert gzip.decompress(gzipped) == body


async def test_a_get_is_gzipped_with_its_own_etag_and_revalidates_with_304(
    http: httpx.AsyncClient, page_of_100: Account
) -> None:
    token, params = page_of_100.token, {"query": PAGE["query"], "variables": json.dumps(PAGE["variables"])}
    miss = await send(http, "GET", params=params, token=token, headers=GZIP)
    hit = await send(http, "GET", params=params, token=token, headers=GZIP)
    plain = await send(http, "GET", params=params, token=token, headers={})
    assert (miss.headers["x-cache"], hit.headers["x-cache"]) == ("MISS", "HIT")
    assert (miss.encoding, hit.encoding, plain.encoding) == ("gzip", "gzip", "identity")
    assert miss.data() == hit.data() == plain.data()
    assert miss.headers["etag"] == hit.headers["etag"] != plain.headers["etag"]
    assert miss.headers["etag"].endswith('-gzip"')
    for response in (miss, hit, plain):
        assert {"authorization", "accept-encoding"} <= set(response.headers["vary"].split(", "))
    gzip_etag = {"if-none-match": hit.headers["etag"]}
    revalidated = await send(http, "GET", params=params, token=token, headers=GZIP | gzip_etag)
    assert (revalidated.status, revalidated.raw, revalidated.encoding) == (304, b"", "identity")
    assert revalidated.headers["etag"] == hit.headers["etag"]
    # The identity representation has another ETag: the gzip one does not validate it.
    other = await send(http, "GET", params=params, token=token, headers=gzip_etag)
    assert (other.status, other.encoding) == (200, "identity")
    identity_etag = {"if-none-match": plain.headers["etag"]}
    assert (await send(http, "GET", params=params, token=token, headers=identity_etag)).status == 304


async def test_without_accept_encoding_a_large_answer_is_sent_as_it_is(
    http: httpx.AsyncClient, page_of_100: Account
) -> None:
    for expected in ("MISS", "HIT"):
        sent = await send(http, "POST", json=PAGE, token=page_of_100.token, headers={})
        assert (sent.headers["x-cache"], sent.encoding) == (expected, "identity")
        assert len(sent.data()["tasks"]["edges"]) == 100


async def test_a_small_answer_is_sent_as_it_is(http: httpx.AsyncClient, alice: Account) -> None:
    for expected in ("MISS", "HIT"):
        sent = await send(http, "POST", json={"query": operation("Me")}, token=alice.token, headers=GZIP)
        assert (sent.headers["x-cache"], sent.encoding) == (expected, "identity")
        assert len(sent.raw) < 1024
        assert "accept-encoding" not in sent.headers.get("vary", "")


async def test_a_login_answer_is_never_compressed_even_above_the_threshold(
    settings: Settings, alice: Account
) -> None:
    login = {
        "query": operation("Login"),
        "variables": {"input": {"email": alice.email, "password": PASSWORD}},
    }
    async with client_for(settings.model_copy(update={"compression_min_bytes": 0})) as http:
        answer = await send(http, "POST", json=login, headers=GZIP)
        query = await send(http, "POST", json={"query": operation("Me")}, token=alice.token, headers=GZIP)
    assert answer.encoding == "identity"
    assert answer.data()["login"]["accessToken"]
    assert query.data()["me"]["email"] == alice.email
    assert query.encoding == "gzip"  # the same client and threshold: a query's answer is compressed


async def test_with_compression_off_every_answer_is_sent_as_it_is(
    settings: Settings, page_of_100: Account
) -> None:
    async with client_for(settings.model_copy(update={"compression": False})) as http:
        sent = [await send(http, "POST", json=PAGE, token=page_of_100.token, headers=GZIP) for _ in range(2)]
    assert [(s.headers["x-cache"], s.encoding) for s in sent] == [("MISS", "identity"), ("HIT", "identity")]
    assert "accept-encoding" not in sent[1].headers.get("vary", "")
    assert len(sent[0].data()["tasks"]["edges"]) == 100
    assert sent[0].data() == sent[1].data()
