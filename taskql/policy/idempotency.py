"""Safe retries of mutations: the ``Idempotency-Key`` request header (IETF httpapi draft "The
Idempotency-Key HTTP Header Field").

A mutation POSTed with the header runs once. A retry with the same key, from the same viewer, with the same
request (document, operation name and variables) is answered with the first outcome (status, body, content
type, plus ``Idempotent-Replayed: true``) without running again, on any instance, for
``IDEMPOTENCY_TTL_SECONDS``. This is how a client that lost an answer to a timeout learns whether its write
happened. The same key with another request is refused (422, as the draft says, ``BAD_REQUEST`` with
``reason: IDEMPOTENCY_KEY_REUSED``); a retry while the first request still runs gets 409
``IDEMPOTENCY_KEY_IN_USE`` with ``Retry-After``, rather than a second execution. A malformed header is a 400
``BAD_REQUEST``. Queries ignore the header.

How it holds on every instance, whatever Redis does: the keys live in PostgreSQL (``idempotency_keys``,
unique per viewer and key). Each mutation field commits its own transaction, so the key cannot share
theirs; instead:

1. *claim*: ``INSERT ... ON CONFLICT``, committed before the mutation runs. One request wins; the
   others read the row: the first outcome (replayed), another request (422), or a request still
   running (409).
2. *store*: once the answer is encoded and before it is sent, it is kept in the row (only by the request
   that holds the claim). An answer that says "nothing happened, try again" (429, 503) releases the key
   instead, so the retry it asks for runs.

The one gap: an instance that dies between a mutation's commit and the store leaves a claim without an
outcome. Such a claim, older than ``IDEMPOTENCY_LOCK_SECONDS``, is taken over by the next retry with the
same request, which executes the mutation (it may then apply twice; the window is the milliseconds
between the commit and the store, during a crash). A request still running past that bound loses its claim
the same way: keep the bound above the slowest mutation.

Scope and secrecy: a key belongs to a viewer, the user (``user:<id>``), or the client address for callers
without a token (``client:<address>``: register, login); no viewer reads another's rows. An answer may hold
tokens (login): it is stored sealed with a key derived from the server's secret, the claim and the request
itself (password included), so the table alone reveals neither the answers nor, through the request hash
(an HMAC), the requests.

Pruning: each claim deletes a few rows past their TTL (oldest first, skipping locked ones): every key
deletes up to ``PRUNE_BATCH`` expired ones as it is made, so the table holds about a TTL's worth of keys
without a scheduled job.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import re
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from starlette.requests import Request
from starlette.responses import Response
from strawberry.http import GraphQLRequestData

from auth.viewer import Viewer
from core.errors import ServiceUnavailable
from core.settings import Settings
from graphql import GraphQLError, OperationType, get_operation_ast, parse
from taskql.http.refusals import RequestRefused
from taskql.state import StateKey

logger = logging.getLogger("taskql.policy.idempotency")

HEADER = "idempotency-key"
REPLAYED_HEADER = "Idempotent-Replayed"  # Stripe's name: the answer is the first request's
CLAIMED = StateKey["Claim"]("taskql.idempotency_claim")  # the request's claim
MAX_KEY_LENGTH = 255
PRUNE_BATCH = 16
CLAIM_ATTEMPTS = 3  # a row released between our claim and our read of it: claim again
RETRY_AFTER_SECONDS = "1"
# Answers that tell the client nothing was applied and to try again: they release the key.
TRANSIENT_STATUSES = frozenset({429, 503})
# An sf-string (RFC 8941 §3.3.3): printable ASCII between double quotes, with \" and \\ escaped.
SF_STRING = re.compile(r'"((?:[ !#-\[\]-~]|\\["\\])*)"')
# What clients send unquoted (Stripe's convention: a bare UUID): token characters, plus : / =.
BARE_KEY = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~:/=-]+")
# Durations are compared on PostgreSQL's clock, the same for every instance.
PRUNE = text("""
    DELETE FROM idempotency_keys WHERE (viewer_key, key) IN (
        SELECT viewer_key, key FROM idempotency_keys WHERE created_at < now() - :ttl * interval '1 second'
        ORDER BY created_at LIMIT :batch FOR UPDATE SKIP LOCKED)""")
# Inserts the claim; or replaces a row past its TTL; or takes over a claim abandoned with the same
# request. Returns nothing when another request holds the key (the row is then read).
CLAIM = text("""
    INSERT INTO idempotency_keys AS k (viewer_key, key, request_hash, claim)
    VALUES (:viewer_key, :key, :request_hash, :claim)
    ON CONFLICT (viewer_key, key) DO UPDATE SET
        request_hash = excluded.request_hash, claim = excluded.claim, claimed_at = now(),
        created_at = CASE WHEN k.created_at < now() - :ttl * interval '1 second' THEN now()
                          ELSE k.created_at END,
        completed_at = NULL, status = NULL, content_type = NULL, body = NULL
    WHERE k.created_at < now() - :ttl * interval '1 second'
        OR (k.completed_at IS NULL AND k.claimed_at < now() - :lock * interval '1 second'
            AND k.request_hash = excluded.request_hash)
    RETURNING claim""")
HELD = text("""
    SELECT request_hash, claim, status, content_type, body FROM idempotency_keys
    WHERE viewer_key = :viewer_key AND key = :key""")
STORE = text("""
    UPDATE idempotency_keys
    SET completed_at = now(), status = :status, content_type = :content_type, body = :body
    WHERE viewer_key = :viewer_key AND key = :key AND claim = :claim""")
RELEASE = text(
    "DELETE FROM idempotency_keys WHERE viewer_key = :viewer_key AND key = :key AND claim = :claim"
)


class Replayed(Exception):
    """The answer is the key's first outcome: sent as it is, nothing executes."""

    def __init__(self, response: Response) -> None:
        super().__init__("replayed")
        self.response = response


def key_of(values: list[str]) -> str:
    """The key of the request's ``Idempotency-Key`` header(s); malformed ones are refused (400)."""
    if len(values) != 1:
        raise RequestRefused(400, "Send one Idempotency-Key header, not several.")
    raw = values[0].strip(" \t")
    quoted = SF_STRING.fullmatch(raw)
    if quoted is not None:
        key = re.sub(r"\\([\"\\])", r"\1", quoted.group(1))
    elif BARE_KEY.fullmatch(raw):
        key = raw
    else:
        raise RequestRefused(
            400,
            'Idempotency-Key must be a string, e.g. Idempotency-Key: "8e03978e-40d5-43e8-bc93-6894a57f9324" '
            "(printable ASCII, no parameters).",
        )
    if not 1 <= len(key) <= MAX_KEY_LENGTH:
        raise RequestRefused(400, f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} characters long.")
    return key


def is_mutation(data: GraphQLRequestData, max_tokens: int) -> bool:
    """Whether the request's operation is a mutation (False when the document does not say: execution then
    reports why)."""
    if not data.query:
        return False
    try:
        document = parse(data.query, max_tokens=max_tokens)
    except GraphQLError:
        return False
    operation = get_operation_ast(document, data.operation_name)
    return operation is not None and operation.operation == OperationType.MUTATION


def viewer_key(viewer: Viewer | None, client: str) -> str:
    return f"user:{viewer.user_id}" if viewer is not None else f"client:{client}"


def canonical(data: GraphQLRequestData) -> bytes:
    """What makes two requests the same one: the document (after persisted-query lookup: a hash-only retry
    is the request it stands for), the operation name and the variables (key order aside)."""
    request = [data.query, data.operation_name, data.variables]
    return json.dumps(request, sort_keys=True, separators=(",", ":")).encode()


def seal(key: bytes, data: bytes) -> bytes:
    """``data`` XORed with SHAKE256(``key``) as key stream; its own inverse. Each key seals one answer (it
    is derived from the claim's random id), so no stream is ever used twice."""
    stream = hashlib.shake_256(key).digest(len(data))
    return (int.from_bytes(data, "big") ^ int.from_bytes(stream, "big")).to_bytes(len(data), "big")


@dataclass(frozen=True, slots=True)
class Claim:
    """The key, held by this request: only it may store an outcome."""

    keys: IdempotencyKeys
    viewer_key: str
    key: str
    token: uuid.UUID
    seal_key: bytes

    def where(self) -> dict[str, object]:
        return {"viewer_key": self.viewer_key, "key": self.key, "claim": self.token}


@dataclass(frozen=True, slots=True)
class IdempotencyKeys:
    engine: AsyncEngine
    secret: bytes  # derived from JWT_SECRET, for this use only
    ttl_seconds: int
    lock_seconds: int
    max_tokens: int  # a document is parsed (to find its operation type) with the schema's token limit

    @classmethod
    def of(cls, settings: Settings, engine: AsyncEngine, *, max_tokens: int) -> IdempotencyKeys:
        secret = hmac.digest(settings.secret.encode(), b"taskql idempotency keys", "sha256")
        return cls(
            engine, secret, settings.idempotency_ttl_seconds, settings.idempotency_lock_seconds, max_tokens
        )

    def _mac(self, purpose: bytes, *parts: bytes) -> bytes:
        return hmac.digest(self.secret, b"\0".join((purpose, *parts)), "sha256")

    async def claim(self, viewer_key: str, key: str, data: GraphQLRequestData) -> Claim:
        """Hold the key for this request; or raise its answer: ``Replayed`` (the first outcome), or a
        refusal (409 still running, 422 another request)."""
        request = canonical(data)
        request_hash = self._mac(b"request", request).hex()
        for _ in range(CLAIM_ATTEMPTS):
            token = uuid.uuid4()
            async with self.engine.begin() as connection:
                if await self._take(connection, viewer_key, key, request_hash, token):
                    return Claim(self, viewer_key, key, token, self._mac(b"seal", token.bytes, request))
                row = (await connection.execute(HELD, {"viewer_key": viewer_key, "key": key})).first()
            if row is not None:
                raise self._answer(row, request_hash, request)
        raise _in_use()

    async def _take(
        self, connection: AsyncConnection, viewer_key: str, key: str, request_hash: str, token: uuid.UUID
    ) -> bool:
        await connection.execute(PRUNE, {"ttl": float(self.ttl_seconds), "batch": PRUNE_BATCH})
        values = {
            "viewer_key": viewer_key,
            "key": key,
            "request_hash": request_hash,
            "claim": token,
            "ttl": float(self.ttl_seconds),
            "lock": float(self.lock_seconds),
        }
        return (await connection.execute(CLAIM, values)).first() is not None

    def _answer(self, row: Row[Any], request_hash: str, request: bytes) -> Exception:
        if not hmac.compare_digest(row.request_hash, request_hash):
            hours = f"{self.ttl_seconds / 3600:g}"
            return RequestRefused(
                422,
                f"This Idempotency-Key was used in the last {hours} h for another request (document, "
                "operation name or variables): send a new key with a new request.",
                code="BAD_REQUEST",
                reason="IDEMPOTENCY_KEY_REUSED",
            )
        if row.status is None:
            return _in_use()
        headers = {REPLAYED_HEADER: "true"}
        if row.content_type is not None:
            headers["content-type"] = row.content_type
        body = seal(self._mac(b"seal", row.claim.bytes, request), row.body)
        return Replayed(Response(body, status_code=row.status, headers=headers))

    async def store(self, claim: Claim, response: Response) -> None:
        """Keep ``response`` as the key's outcome (its claim still held: else it was taken over)."""
        values = {
            **claim.where(),
            "status": response.status_code,
            "content_type": response.headers.get("content-type"),
            "body": seal(claim.seal_key, bytes(response.body)),
        }
        async with self.engine.begin() as connection:
            stored = (await connection.execute(STORE, values)).rowcount
        if not stored:
            logger.warning(
                "idempotency key taken over by a retry while its request ran (over "
                "IDEMPOTENCY_LOCK_SECONDS=%s): its outcome is not the one kept",
                self.lock_seconds,
            )

    async def release(self, claim: Claim) -> None:
        async with self.engine.begin() as connection:
            await connection.execute(RELEASE, claim.where())


def _in_use() -> RequestRefused:
    return RequestRefused(
        409,
        "A request with this Idempotency-Key is still running: retry once it has answered.",
        code="IDEMPOTENCY_KEY_IN_USE",
        headers={"Retry-After": RETRY_AFTER_SECONDS},
    )


async def claim_key(
    keys: IdempotencyKeys, request: Request, viewer: Viewer | None, client: str, data: GraphQLRequestData
) -> None:
    """Before a POSTed mutation with an ``Idempotency-Key`` runs: hold the key (kept in the request's
    state for ``settle``), or raise the answer it already has. Anything else passes untouched."""
    values = request.headers.getlist(HEADER)
    if not values or request.method != "POST" or not is_mutation(data, keys.max_tokens):
        return
    key = key_of(values)
    CLAIMED.set(request.scope, await keys.claim(viewer_key(viewer, client), key, data))


async def settle(request: Request, response: Response) -> None:
    """Before the answer is sent: keep it as the key's outcome, or release the key when it says nothing was
    applied. A failure is logged, and the answer still sent: the claim then waits for its lock to lapse."""
    claim = CLAIMED.get(request.scope)
    if claim is None:
        return
    body = getattr(response, "body", None)
    keep = isinstance(body, bytes) and response.status_code not in TRANSIENT_STATUSES
    try:  # shielded: a cancelled request's answer (its writes committed) is still worth keeping
        await asyncio.shield(claim.keys.store(claim, response) if keep else claim.keys.release(claim))
    except (ServiceUnavailable, SQLAlchemyError, OSError) as error:
        logger.error("idempotency key's outcome not kept: %s", type(error).__name__)
