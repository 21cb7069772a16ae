"""The response cache: query responses kept in Redis per viewer, never served stale, never shared.

How it holds:

- **Tags.** What a response can depend on is named by tags (``core.cache_tags``): a USER's responses depend
  on their account and their tasks, an ADMIN's on every account and every task, everyone's on the epoch.
  Each tag has a version in Redis: a random token, replaced by every write that touches the tag.
- **Read before, checked at every hit.** The versions are read *before* the data is (in the same round trip
  as the failed lookup), and stored with the response. A hit is served only if every stored version is still
  the current one: the lookup reads the session state, the entry and the current versions in one pipelined
  round trip (a write acknowledged before the request began has bumped them already). A missing version
  never matches.
- **Bumped after commit, before the answer.** A mutation replaces the versions of the tags it touched after
  its transaction commits and before its response is sent. So once a write is acknowledged, every response
  computed from older data has a stale version and is never served again, by any instance.
- **Per viewer.** The key holds the user id; the entry records the user and role it was computed for, and a
  hit is served only when both are the requester's, so an entry can never reach another user.
- **The viewer too.** Whether an access token's session is still live (not logged out, account active, same
  role) is cached the same way, depending on the ``session`` and ``user`` tags; so a hit needs no SQL, and a
  logout or a role change is seen by the very next request. If Redis cannot answer, the viewer is loaded from
  PostgreSQL: security state never fails open. Mutations are always authorized by PostgreSQL
  (``schema.extensions.write_authorization``).
- **Redis failures.** Every call goes through ``RedisGuard``. A bump that cannot be delivered is not lost:
  the instance serves no hit until it has replaced the epoch (every entry's first tag), which its guard does
  before the first successful call after the failure.
- **Writes outside GraphQL** (``migrate``, ``seed``, ``create-admin``, ``flush-cache``) bump tags too.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import itertools
import logging
import os
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from auth.tokens import AccessClaims
from auth.viewer import Viewer
from core import cache_tags
from core.cache_tags import Policy
from models import Role
from taskql.http.compression import Compression, gzip
from taskql.redis.client import TAG_PREFIX, TAG_TTL_SECONDS, RedisGuard, RedisUnavailable
from taskql.redis.pipeline import PipelinedRedis, encode

logger = logging.getLogger("taskql.cache.store")

ENTRY_PREFIX = "taskql:c:r:"
VIEWER_PREFIX = "taskql:c:v:"
ANONYMOUS = "ANONYMOUS"
VERSION_PREFIX = os.urandom(8).hex()
VERSION_NUMBERS = itertools.count()

# Store the viewer state and the entry, each only if the versions it was computed from are still current.
# KEYS: entry, viewer state
# ARGV: user, role, entry tags ('' to skip), entry versions, body, etag, public, max-age, entry TTL,
#       viewer tags ('' to skip), viewer versions, viewer TTL, entry positions, viewer positions,
#       operation name (for the access log and metrics of its hits), body gzipped ('' when not kept)
STORE = """
local function current(tags)
  local out = {}
  for tag in string.gmatch(tags, '%S+') do
    local version = redis.call('GET', tag)
    if not version then return nil end
    out[#out + 1] = version
  end
  return table.concat(out, ' ')
end
if ARGV[10] ~= '' and current(ARGV[10]) == ARGV[11] then
  redis.call('HSET', KEYS[2], 'u', ARGV[1], 'r', ARGV[2], 'i', ARGV[14], 'v', ARGV[11])
  redis.call('EXPIRE', KEYS[2], ARGV[12])
end
if ARGV[3] ~= '' and current(ARGV[3]) == ARGV[4] then
  redis.call('HSET', KEYS[1], 'u', ARGV[1], 'r', ARGV[2], 'i', ARGV[13], 'v', ARGV[4],
             'b', ARGV[5], 'e', ARGV[6], 'p', ARGV[7], 'a', ARGV[8], 'o', ARGV[15], 'z', ARGV[16])
  redis.call('EXPIRE', KEYS[1], ARGV[9])
end
return 1
"""


def tag_key(tag: str) -> str:
    return TAG_PREFIX + tag


def etag_of(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


@dataclass(frozen=True, slots=True)
class Hit:
    body: bytes
    etag: str
    public: bool
    max_age: int
    operation: str = ""  # its operation's name, and its viewer's id ('' for anonymous): for the access log
    user_id: str = ""
    gzipped: bytes | None = None  # the body gzipped, kept when it is large enough (taskql.http.compression)


@dataclass(frozen=True, slots=True)
class Probe:
    """A lookup that missed: what the request needs to store its answer, read before any data."""

    key: str
    claims: AccessClaims | None
    versions: dict[str, str] = field(default_factory=dict)  # tag -> version
    # The role Redis vouches for, for a live session (None: ask PostgreSQL).
    viewer_role: Role | None = None

    def viewer(self) -> Viewer | None:
        if self.claims is None or self.viewer_role is None:
            return None
        return Viewer(user_id=self.claims.user_id, session_id=self.claims.session_id, role=self.viewer_role)


@dataclass(frozen=True, slots=True)
class _ProbeKeys:
    """What a lookup sends for one viewer: every tag any of its answers can depend on (its role is not
    known before the lookup), and the key of its session state."""

    user_id: str
    viewer_key: str
    tags: tuple[str, ...]
    tag_keys: tuple[str, ...]
    # The lookup's two commands that depend on the viewer alone, in RESP, built once.
    state_command: bytes = b""
    versions_command: bytes = b""

    @classmethod
    def build(cls, user_id: str, viewer_key: str, tags: tuple[str, ...]) -> _ProbeKeys:
        tag_keys = tuple(map(tag_key, tags))
        return cls(
            user_id,
            viewer_key,
            tags,
            tag_keys,
            encode("HMGET", viewer_key, "u", "r", "i", "v"),
            encode("MGET", *tag_keys),
        )

    @staticmethod
    @functools.lru_cache(maxsize=10_000)  # a client sends the same token many times: build this once
    def of(user_id: uuid.UUID, session_id: uuid.UUID) -> _ProbeKeys:
        tags = (
            *cache_tags.viewer_tags(user_id, is_admin=True),
            cache_tags.tasks_of(user_id),
            cache_tags.session(session_id),
        )
        return _ProbeKeys.build(str(user_id), VIEWER_PREFIX + str(session_id), tags)


ANONYMOUS_KEYS = _ProbeKeys.build("", VIEWER_PREFIX, (cache_tags.EPOCH,))


_ENTRY_FIELDS = ("u", "r", "i", "v", "b", "e", "p", "a", "o", "z")
_ENTRY_HEAD = b"*%d\r\n" % (len(_ENTRY_FIELDS) + 2) + encode("HMGET").partition(b"\r\n")[2]
_ENTRY_TAIL = encode(*_ENTRY_FIELDS).partition(b"\r\n")[2]


def _entry_command(key: str) -> bytes:
    """``HMGET key u r i ...`` in RESP: only the key changes (an entry key is ASCII: a prefix and hex)."""
    return b"%b$%d\r\n%b\r\n%b" % (_ENTRY_HEAD, len(key), key.encode(), _ENTRY_TAIL)


def _signature(versions: list[bytes | None], positions: bytes | None) -> bytes | None:
    """The versions at ``positions`` (digits, 1-based, among the lookup's tags), as an entry stores them."""
    if not positions:
        return None
    picked = [versions[digit - 49] for digit in positions]  # b"1" is 49
    if None in picked:
        return None
    return b" ".join(picked)  # type: ignore[arg-type]


async def _set_absent(
    redis: Redis, tag_keys: tuple[str, ...], versions: list[bytes | None], fresh: str
) -> list[bytes]:
    async with redis.pipeline(transaction=False) as pipe:
        for tag_key_, version in zip(tag_keys, versions, strict=True):
            if version is None:
                pipe.set(tag_key_, fresh, nx=True, ex=TAG_TTL_SECONDS)
        pipe.mget(tag_keys)
        replies = await pipe.execute()
    return list(replies[-1])


def _decode(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class ResponseCache:
    def __init__(
        self,
        guard: RedisGuard,
        pipe: PipelinedRedis,
        *,
        schema_id: str,
        viewer_ttl_seconds: int,
        compression: Compression | None = None,
    ) -> None:
        self.guard = guard
        self.compression = compression  # None: entries keep no gzip copy
        self.pipe = pipe  # the lookups' own connection, auto-pipelined (taskql.redis.pipeline)
        self.schema_id = schema_id
        self.viewer_ttl_seconds = viewer_ttl_seconds
        # Set when a bump could not be delivered; cleared once the epoch has been replaced after it (a
        # failure during the recovery keeps it set: it is counted).
        self._undelivered = False
        self._failures = 0
        self._store_sha = hashlib.sha1(STORE.encode(), usedforsecurity=False).hexdigest()  # as Redis names it
        guard.on_recovery(self._recover)

    @staticmethod
    def _fresh_version() -> str:
        """A version no tag has had: a random prefix per process, then a counter."""
        return f"{VERSION_PREFIX}{next(VERSION_NUMBERS):x}"

    def entry_key(self, method: str, request: bytes, user_id: str) -> str:
        """The key of an answer: the request as sent (a POST's body, a GET's query string) and its viewer."""
        digest = hashlib.sha256(f"{self.schema_id}\0{method}\0{user_id}\0".encode())
        digest.update(request)
        return ENTRY_PREFIX + digest.hexdigest()

    async def lookup(self, key: str, claims: AccessClaims | None) -> Hit | Probe | None:
        """A hit, or a probe to store the answer with; None when Redis cannot be used."""
        if self._undelivered:
            try:  # replace the epoch first (the guard runs the recovery before any other call succeeds)
                await self.guard.call(self._recover)
            except RedisUnavailable:
                return None
        keys = _ProbeKeys.of(claims.user_id, claims.session_id) if claims else ANONYMOUS_KEYS
        try:
            # One round trip: the session state, the entry, and the current versions of the tags either may
            # depend on. Reading the versions in the same round trip as the entry is enough: a write
            # acknowledged before this request began has bumped them already.
            state, entry, versions = await self.guard.send(
                self.pipe, keys.state_command + _entry_command(key) + keys.versions_command, 3
            )
        except RedisUnavailable:
            return None
        user = keys.user_id.encode()
        role: bytes | None = ANONYMOUS.encode() if claims is None else None
        if claims is not None and state[0] == user and _signature(versions, state[2]) == state[3]:
            role = state[1]
        # The entry must be this viewer's (user and role): a reply meant for anyone else is never used.
        if (
            role is not None
            and entry[0] == user
            and entry[1] == role
            and _signature(versions, entry[2]) == entry[3]
        ):
            return Hit(
                body=entry[4],
                etag=entry[5].decode(),
                public=entry[6] == b"1",
                max_age=int(entry[7]),
                operation=(entry[8] or b"").decode(errors="replace"),
                user_id=keys.user_id,
                gzipped=entry[9] or None,
            )
        if None in versions:
            versions = await self._create_tags(keys, versions)
            if versions is None:
                return None
        viewer_role = Role(role.decode()) if claims is not None and role is not None else None
        return Probe(
            key=key,
            claims=claims,
            versions=dict(zip(keys.tags, map(_decode, versions), strict=True)),
            viewer_role=viewer_role,
        )

    async def _create_tags(self, keys: _ProbeKeys, versions: list[bytes | None]) -> list[bytes] | None:
        """Give absent tags a version before anything is read, so no entry is stored against a version
        that does not exist; the versions as they are now."""
        fresh = self._fresh_version()
        try:
            return list(
                await self.guard.call(lambda redis: _set_absent(redis, keys.tag_keys, versions, fresh))
            )
        except RedisUnavailable:
            return None

    async def store(
        self,
        probe: Probe,
        viewer: Viewer | None,
        body: bytes,
        policy: Policy | None,
        ttl: int,
        operation: str = "",
        gzipped: bytes | None = None,
    ) -> None:
        """Keep the answer (when ``policy`` allows) and the viewer's session state (when it came from
        PostgreSQL), each against the versions read before its data. A large answer is kept gzipped too
        (``gzipped``, when the request made it already), so that hits never compress."""
        claims = probe.claims
        if (viewer is None) != (claims is None) or (
            viewer is not None
            and claims is not None
            and (viewer.user_id, viewer.session_id) != (claims.user_id, claims.session_id)
        ):
            return
        entry_tags = (
            cache_tags.viewer_tags(viewer.user_id, is_admin=viewer.is_admin)
            if viewer
            else (cache_tags.EPOCH,)
        )
        viewer_tags: tuple[str, ...] = ()
        if viewer is not None and probe.viewer_role is None:
            viewer_tags = (
                cache_tags.EPOCH,
                cache_tags.user(viewer.user_id),
                cache_tags.session(viewer.session_id),
            )
        cacheable = policy is not None and policy.cacheable and ttl > 0
        if not cacheable and not viewer_tags:
            return
        if cacheable and gzipped is None and self.compression is not None and self.compression.worth(body):
            gzipped = gzip(body)
        args: list[str | int | bytes] = [
            str(viewer.user_id) if viewer else "",
            viewer.role.value if viewer else ANONYMOUS,
            self._joined(entry_tags) if cacheable else "",
            self._versions(probe, entry_tags),
            body,
            etag_of(body),
            "1" if policy is not None and policy.public else "0",
            policy.max_age if policy is not None else 0,
            ttl,
            self._joined(viewer_tags),
            self._versions(probe, viewer_tags),
            self.viewer_ttl_seconds,
            self._positions(probe, entry_tags),
            self._positions(probe, viewer_tags),
            operation,
            (gzipped or b"") if cacheable else b"",
        ]
        viewer_key = VIEWER_PREFIX + (str(viewer.session_id) if viewer else "")
        with contextlib.suppress(RedisUnavailable):
            await self.guard.call(lambda _: self._run_store([probe.key, viewer_key], args))

    async def _run_store(self, keys: list[str], args: list[str | int | bytes]) -> None:
        """The store script on the pipelined connection (as the lookup): by its hash, and by its text the
        first time a Redis has not seen it (after a restart or a SCRIPT FLUSH)."""
        try:
            await self.pipe.execute("EVALSHA", self._store_sha, len(keys), *keys, *args)
        except ResponseError as error:
            if not str(error).startswith("NOSCRIPT"):
                raise
            await self.pipe.execute("EVAL", STORE, len(keys), *keys, *args)

    @staticmethod
    def _joined(tags: Iterable[str]) -> str:
        return " ".join(map(tag_key, tags))

    @staticmethod
    def _positions(probe: Probe, tags: Iterable[str]) -> str:
        """Where each tag sits among the lookup's tags (``_ProbeKeys``), as digits."""
        order = list(probe.versions)
        return "".join(str(order.index(tag) + 1) for tag in tags if tag in probe.versions)

    @staticmethod
    def _versions(probe: Probe, tags: Iterable[str]) -> str:
        return " ".join(probe.versions.get(tag, "") for tag in tags)

    def undelivered(self) -> None:
        """Writes' invalidations could not reach Redis (the outbox relay delivers them later): serve no hit
        before the epoch is replaced."""
        self._undelivered = True
        self._failures += 1

    async def _recover(self, redis: Redis) -> None:
        if self._undelivered:
            failures = self._failures
            await bump_tags(redis, [cache_tags.EPOCH])
            self._undelivered = self._failures != failures
            logger.warning("cache epoch replaced after a deferred invalidation")


async def bump_tags(redis: Redis, tags: Iterable[str]) -> None:
    """Give each tag a new random version (one round trip). Also used by the CLI."""
    version = uuid.uuid4().hex
    async with redis.pipeline(transaction=False) as pipe:
        for tag in tags:
            pipe.set(tag_key(tag), version, ex=TAG_TTL_SECONDS)
        await pipe.execute()


async def flush(redis_url: str) -> None:
    """Replace the epoch, the first tag of every entry: nothing cached before is served again. For writes
    made outside GraphQL (the CLI, migrations, a hand-run SQL fix)."""
    redis = Redis.from_url(redis_url, socket_connect_timeout=5, socket_timeout=5)
    try:
        await bump_tags(redis, [cache_tags.EPOCH])
    finally:
        await redis.aclose()
