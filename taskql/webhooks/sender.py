"""The app's webhook transport (``resolvers.webhooks.WebhookSender``): the SSRF rules of this deployment
(``ENVIRONMENT``, ``WEBHOOKS_ALLOW_PRIVATE``) applied when a URL is saved and at every delivery."""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

from core.errors import BadUserInput
from core.settings import Settings
from taskql.webhooks.delivery import Attempt, deliver
from taskql.webhooks.ssrf import DEFAULT_PORTS, Resolver, UnsafeUrl, check_url, resolve_public

FIELD = "input.url"


@dataclass(frozen=True, slots=True)
class Sender:
    production: bool
    allow_private: bool
    resolver: Resolver | None = None  # None: the system's (tests pass their own)
    ssl_context: ssl.SSLContext | None = None  # None: the public certificate authorities

    @classmethod
    def of(cls, settings: Settings) -> Sender:
        return cls(settings.environment == "production", settings.webhooks_allow_private)

    async def check(self, url: str) -> str:
        """The URL normalized, its host resolved and every address judged now (delivery judges again)."""
        try:
            checked = check_url(url, production=self.production, allow_private=self.allow_private)
            target = httpx.URL(checked)
            host, port = target.raw_host.decode("ascii"), target.port or DEFAULT_PORTS[target.scheme]
            await resolve_public(host, port, allow_private=self.allow_private, resolver=self.resolver)
        except UnsafeUrl as refusal:
            raise BadUserInput(f"input.{refusal}.", field=FIELD, reason=refusal.reason) from None
        return checked

    async def send(self, url: str, payload: bytes, *, secrets: Sequence[str], message_id: str) -> Attempt:
        return await deliver(
            url,
            payload,
            secret=secrets,
            message_id=message_id,
            timestamp=datetime.now(UTC),
            production=self.production,
            allow_private=self.allow_private,
            resolver=self.resolver,
            ssl_context=self.ssl_context,
        )
