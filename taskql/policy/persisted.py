"""Persisted queries: Apollo's APQ protocol and trusted documents.

- APQ (``extensions.persistedQuery {version: 1, sha256Hash}``): a hash alone is looked up in Redis (shared by
  every instance); unknown → ``PersistedQueryNotFound`` (code ``PERSISTED_QUERY_NOT_FOUND``), and the client
  sends the query with its hash; a hash that is not the query's SHA-256 is refused. A document is stored only
  once it parses and validates, at most ``apq_max_document_bytes`` long, for ``apq_ttl_seconds``, and at most
  ``apq_registrations_per_minute`` per client: past that the query still runs, it is just not stored.
- Trusted documents: ``graphql/manifest.json`` (Apollo's persisted-query manifest format), built from
  ``graphql/queries/*.graphql`` by ``python -m taskql build-manifest``. Its documents are always known by
  hash; with ``PERSISTED_QUERIES=trusted-only`` nothing else executes. They are addressed by APQ hash or by
  ``documentId: "sha256:<hex>"`` (the GraphQL-over-HTTP persisted documents proposal).
- Redis unavailable: a lookup is a miss (the client resends the query) and a registration is skipped, so
  requests keep working.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from redis.asyncio import Redis
from strawberry.http import GraphQLRequestData

from graphql import ASTValidationRule, GraphQLError, GraphQLSchema, parse, specified_rules, validate
from taskql.ops import metrics
from taskql.redis.client import RedisGuard, RedisUnavailable

logger = logging.getLogger("taskql.policy.persisted")

Mode = Literal["off", "apq", "trusted-only"]
QUERIES = Path(__file__).resolve().parents[2] / "graphql" / "queries"
MANIFEST = QUERIES.parent / "manifest.json"
SHA256 = re.compile(r"^[0-9a-f]{64}$")
APQ_PREFIX = "taskql:apq:"
RATE_PREFIX = "taskql:apq-rate:"


class PersistedQueryError(Exception):
    """A refusal, answered as a GraphQL error with ``code`` and the HTTP ``status``."""

    def __init__(self, message: str, code: str, status: int = 200) -> None:
        super().__init__(message)
        self.message, self.code, self.status = message, code, status

    def as_graphql_error(self) -> GraphQLError:
        return GraphQLError(self.message, extensions={"code": self.code})


def sha256_hex(document: str) -> str:
    return hashlib.sha256(document.encode()).hexdigest()


def build_manifest(queries: Path = QUERIES) -> dict[str, Any]:
    """Apollo's persisted-query manifest of the operations in ``queries``, one per file."""
    operations = []
    for path in sorted(queries.glob("*.graphql")):
        body = path.read_text()
        definition = parse(body).definitions[0]
        operations.append(
            {
                "id": sha256_hex(body),
                "name": getattr(getattr(definition, "name", None), "value", path.stem),
                "type": getattr(definition, "operation").value,  # noqa: B009
                "body": body,
            }
        )
    return {"format": "apollo-persisted-query-manifest", "version": 1, "operations": operations}


def manifest_text(manifest: Mapping[str, Any]) -> str:
    return json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"


def load_manifest(path: Path = MANIFEST) -> dict[str, str]:
    """hash → document of the committed manifest (empty if there is none)."""
    if not path.exists():
        return {}
    return {operation["id"]: operation["body"] for operation in json.loads(path.read_text())["operations"]}


@dataclass(frozen=True)
class PersistedQueries:
    mode: Mode
    guard: RedisGuard
    schema: GraphQLSchema
    trusted: Mapping[str, str]
    ttl_seconds: int
    max_document_bytes: int
    registrations_per_minute: int
    # The schema's limits (schema.extensions.query_limits.limit_rules).
    rules: tuple[type[ASTValidationRule], ...] = ()

    async def resolve(self, data: GraphQLRequestData, client: str) -> GraphQLRequestData:
        """The request with its document filled in from the persisted ones; refusals raise."""
        extensions = data.extensions or {}
        document_id = extensions.get("documentId")
        persisted = extensions.get("persistedQuery")
        if self.mode == "off":
            if persisted is not None or document_id is not None:
                raise PersistedQueryError("PersistedQueryNotSupported", "PERSISTED_QUERY_NOT_SUPPORTED")
            return data
        if document_id is not None:
            return replace(data, query=self._trusted_by_id(document_id))
        if persisted is None:
            if self.mode == "trusted-only" and (
                data.query is None or sha256_hex(data.query) not in self.trusted
            ):
                raise PersistedQueryError(
                    "Only trusted documents are accepted: send the hash of an operation from the manifest.",
                    "PERSISTED_QUERY_NOT_ALLOWED",
                    status=400,
                )
            return data
        digest = self._checked_hash(persisted)
        if data.query is not None:
            if sha256_hex(data.query) != digest:
                raise PersistedQueryError("provided sha does not match query", "BAD_REQUEST", status=400)
            if self.mode == "trusted-only" and digest not in self.trusted:
                raise PersistedQueryError(
                    "Only trusted documents are accepted.", "PERSISTED_QUERY_NOT_ALLOWED", status=400
                )
            await self._remember(digest, data.query, client)
            return data
        query = self.trusted.get(digest)
        if query is None and self.mode == "apq":
            query = await self._lookup(digest)
        if query is None:
            metrics.apq("miss")
            raise PersistedQueryError("PersistedQueryNotFound", "PERSISTED_QUERY_NOT_FOUND")
        metrics.apq("hit")
        return replace(data, query=query)

    def _trusted_by_id(self, document_id: object) -> str:
        if not isinstance(document_id, str) or not document_id.startswith("sha256:"):
            raise PersistedQueryError('documentId must look like "sha256:<hex>".', "BAD_REQUEST", status=400)
        query = self.trusted.get(document_id.removeprefix("sha256:"))
        if query is None:
            metrics.apq("miss")
            raise PersistedQueryError("PersistedQueryNotFound", "PERSISTED_QUERY_NOT_FOUND")
        metrics.apq("hit")
        return query

    @staticmethod
    def _checked_hash(persisted: object) -> str:
        if not isinstance(persisted, dict) or persisted.get("version") != 1:
            raise PersistedQueryError(
                "PersistedQueryNotSupported", "PERSISTED_QUERY_NOT_SUPPORTED", status=400
            )
        digest = persisted.get("sha256Hash")
        if not isinstance(digest, str) or not SHA256.match(digest):
            raise PersistedQueryError(
                "sha256Hash must be 64 lowercase hex digits.", "BAD_REQUEST", status=400
            )
        return digest

    async def _lookup(self, digest: str) -> str | None:
        try:
            stored = await self.guard.call(lambda redis: redis.get(APQ_PREFIX + digest))
        except RedisUnavailable as error:
            logger.warning("APQ lookup skipped, Redis unavailable: %s", error)
            return None
        if stored is None:
            return None
        return stored.decode() if isinstance(stored, bytes) else str(stored)

    def _is_valid(self, query: str) -> bool:
        try:
            document = parse(query)
        except GraphQLError:
            return False
        return not validate(self.schema, document, (*specified_rules, *self.rules))

    async def _remember(self, digest: str, query: str, client: str) -> None:
        """Store a document for its hash: only valid ones, bounded in size, count per client, and time."""
        if (
            digest in self.trusted
            or len(query.encode()) > self.max_document_bytes
            or not self._is_valid(query)
        ):
            return
        try:
            await self.guard.call(lambda redis: self._store(redis, digest, query, client))
        except RedisUnavailable as error:
            logger.warning("APQ registration skipped, Redis unavailable: %s", error)

    async def _store(self, redis: Redis, digest: str, query: str, client: str) -> None:
        rate_key = RATE_PREFIX + client
        async with redis.pipeline(transaction=True) as pipe:
            pipe.set(rate_key, 0, ex=60, nx=True)  # a window of one minute (EXPIRE NX needs Redis 7)
            pipe.incr(rate_key)
            _, count = await pipe.execute()
        if count <= self.registrations_per_minute:
            await redis.set(APQ_PREFIX + digest, query.encode(), ex=self.ttl_seconds)
            metrics.apq("registered")
        else:
            metrics.rate_limited("apq_registrations")
