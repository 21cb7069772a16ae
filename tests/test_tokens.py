"""The JWT negative matrix: every malformed, forged or stale access token is UNAUTHENTICATED."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import jwt
import pytest

from core.settings import Settings
from tests.factories import Account
from tests.graphql_client import GraphQLClient


def claims_of(token: str) -> dict[str, Any]:
    return dict(jwt.decode(token, options={"verify_signature": False}))


def signed(settings: Settings, claims: dict[str, Any], **kwargs: Any) -> str:
    return jwt.encode(claims, settings.secret, algorithm=kwargs.pop("algorithm", "HS256"), **kwargs)


def unsigned(claims: dict[str, Any]) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


Forgery = Callable[[Settings, dict[str, Any], str], str]

FORGERIES: dict[str, Forgery] = {
    "alg none": lambda settings, claims, token: unsigned(claims),
    "wrong secret": lambda settings, claims, token: jwt.encode(claims, "x" * 48, algorithm="HS256"),
    "HS512 instead of HS256": lambda settings, claims, token: signed(settings, claims, algorithm="HS512"),
    "expired": lambda settings, claims, token: signed(settings, {**claims, "exp": int(time.time()) - 1}),
    "wrong audience": lambda settings, claims, token: signed(settings, {**claims, "aud": "another-api"}),
    "wrong issuer": lambda settings, claims, token: signed(settings, {**claims, "iss": "someone-else"}),
    "no expiry": lambda settings, claims, token: signed(
        settings, {k: v for k, v in claims.items() if k != "exp"}
    ),
    "no session": lambda settings, claims, token: signed(
        settings, {k: v for k, v in claims.items() if k != "sid"}
    ),
    "unknown session": lambda settings, claims, token: signed(settings, {**claims, "sid": str(uuid.uuid4())}),
    "unknown user": lambda settings, claims, token: signed(settings, {**claims, "sub": str(uuid.uuid4())}),
    "subject not a uuid": lambda settings, claims, token: signed(settings, {**claims, "sub": "1 OR 1=1"}),
    "tampered payload": lambda settings, claims, token: (
        token.split(".")[0]
        + "."
        + base64.urlsafe_b64encode(json.dumps({**claims, "sub": str(uuid.uuid4())}).encode())
        .decode()
        .rstrip("=")
        + "."
        + token.split(".")[2]
    ),
    "truncated signature": lambda settings, claims, token: token[:-4],
    "garbage": lambda settings, claims, token: "not-a-jwt",
}


@pytest.mark.parametrize("forgery", FORGERIES)
async def test_a_forged_or_stale_access_token_is_unauthenticated(
    gql: GraphQLClient, settings: Settings, alice: Account, forgery: str
) -> None:
    token = FORGERIES[forgery](settings, claims_of(alice.token), alice.token)
    response = await gql.run("Tasks", {"first": 1}, token=token)
    assert response.codes == ["UNAUTHENTICATED"]
    assert response.data is None


async def test_an_expired_token_asks_the_client_to_refresh(
    gql: GraphQLClient, settings: Settings, alice: Account
) -> None:
    token = signed(settings, {**claims_of(alice.token), "exp": int(time.time()) - 1})
    response = await gql.run("Me", token=token)
    assert response.errors[0]["extensions"] == {"code": "UNAUTHENTICATED", "reason": "TOKEN_EXPIRED"}


async def test_an_authorization_header_without_bearer_is_refused(gql: GraphQLClient, alice: Account) -> None:
    response = await gql.http.post(
        "/graphql", json={"query": "{ me { id } }"}, headers={"authorization": f"Token {alice.token}"}
    )
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_access_tokens_carry_the_standard_claims(settings: Settings, alice: Account) -> None:
    claims = claims_of(alice.token)
    assert {"exp", "iat", "sub", "jti", "iss", "aud", "sid"} <= claims.keys()
    assert claims["exp"] - claims["iat"] == settings.access_token_ttl_seconds
    assert jwt.get_unverified_header(alice.token)["alg"] == "HS256"
