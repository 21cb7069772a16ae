"""The JWT negative matrix: every malformed, forged or stale access token is UNAUTHENTICATED."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import jwt
import pytest

from auth.tokens import REQUIRED_CLAIMS
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


def part(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def hmac_with(key: str, header: dict[str, Any], claims: object) -> str:
    """A token HMAC-SHA256-signed with ``key`` whatever its header says (PyJWT would refuse to write some)."""
    signing_input = f"{part(header)}.{part(claims)}"
    digest = hmac.new(key.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(digest).decode().rstrip('=')}"


def hmac_signed(settings: Settings, header: dict[str, Any], claims: object) -> str:
    """Signed with the server's own secret: what a verifier that trusts ``alg`` would accept."""
    return hmac_with(settings.secret, header, claims)


def without(claims: dict[str, Any], name: str) -> dict[str, Any]:
    return {key: value for key, value in claims.items() if key != name}


def flipped(text: str, index: int) -> str:
    return text[:index] + ("A" if text[index] != "A" else "B") + text[index + 1 :]


def in_seconds(seconds: int) -> int:
    return int(time.time()) + seconds


def past_the_leeway(settings: Settings) -> int:
    """An expiry this server no longer accepts: further back than the clock skew it allows."""
    return in_seconds(-settings.jwt_leeway_seconds - 1)


# Each forgery, and the reason the refusal gives (stable: clients key on TOKEN_EXPIRED to refresh).
FORGERIES: dict[str, tuple[Forgery, str]] = {
    "alg none": (lambda settings, claims, token: unsigned(claims), "TOKEN_INVALID"),
    "alg None, with the original signature": (
        lambda settings, claims, token: (
            f"{part({'alg': 'None', 'typ': 'JWT'})}.{part(claims)}." + token.split(".")[2]
        ),
        "TOKEN_INVALID",
    ),
    "wrong secret": (
        lambda settings, claims, token: jwt.encode(claims, "x" * 48, algorithm="HS256"),
        "TOKEN_INVALID",
    ),
    "empty secret": (
        lambda settings, claims, token: hmac_with("", {"alg": "HS256", "typ": "JWT"}, claims),
        "TOKEN_INVALID",
    ),
    "HS512 instead of HS256": (
        lambda settings, claims, token: signed(settings, claims, algorithm="HS512"),
        "TOKEN_INVALID",
    ),
    "RS256 header, HMAC of the secret (algorithm confusion)": (
        lambda settings, claims, token: hmac_signed(settings, {"alg": "RS256", "typ": "JWT"}, claims),
        "TOKEN_INVALID",
    ),
    "HS256 header naming a key of its own (jwk)": (
        lambda settings, claims, token: jwt.encode(
            claims, "k" * 48, algorithm="HS256", headers={"jwk": {"kty": "oct", "k": part("k" * 48)}}
        ),
        "TOKEN_INVALID",
    ),
    "expired (beyond the leeway)": (
        lambda settings, claims, token: signed(settings, {**claims, "exp": past_the_leeway(settings)}),
        "TOKEN_EXPIRED",
    ),
    "not yet valid (nbf, beyond the leeway)": (
        lambda settings, claims, token: signed(settings, {**claims, "nbf": in_seconds(120)}),
        "TOKEN_NOT_YET_VALID",
    ),
    "issued in the future (iat, beyond the leeway)": (
        lambda settings, claims, token: signed(settings, {**claims, "iat": in_seconds(120)}),
        "TOKEN_NOT_YET_VALID",
    ),
    "wrong audience": (
        lambda settings, claims, token: signed(settings, {**claims, "aud": "another-api"}),
        "TOKEN_INVALID",
    ),
    "wrong issuer": (
        lambda settings, claims, token: signed(settings, {**claims, "iss": "someone-else"}),
        "TOKEN_INVALID",
    ),
    **{
        f"no {name}": (
            lambda settings, claims, token, name=name: signed(settings, without(claims, name)),  # type: ignore[misc]
            "TOKEN_INVALID",
        )
        for name in REQUIRED_CLAIMS
    },
    "unknown session": (
        lambda settings, claims, token: signed(settings, {**claims, "sid": str(uuid.uuid4())}),
        "SESSION_REVOKED",
    ),
    "unknown user": (
        lambda settings, claims, token: signed(settings, {**claims, "sub": str(uuid.uuid4())}),
        "SESSION_REVOKED",
    ),
    "subject not a uuid": (
        lambda settings, claims, token: signed(settings, {**claims, "sub": "1 OR 1=1"}),
        "TOKEN_INVALID",
    ),
    # Signed with the secret, so only a holder of the key could make these; still refused, never a crash.
    "session id a number": (
        lambda settings, claims, token: signed(settings, {**claims, "sid": 123}),
        "TOKEN_INVALID",
    ),
    "session id a list": (
        lambda settings, claims, token: signed(settings, {**claims, "sid": [claims["sid"]]}),
        "TOKEN_INVALID",
    ),
    "expiry beyond any date": (
        lambda settings, claims, token: signed(settings, {**claims, "exp": 10**30}),
        "TOKEN_INVALID",
    ),
    "expiry a string": (
        lambda settings, claims, token: signed(settings, {**claims, "exp": str(in_seconds(60))}),
        "TOKEN_INVALID",
    ),
    "claims not an object": (
        lambda settings, claims, token: hmac_signed(settings, {"alg": "HS256", "typ": "JWT"}, [claims]),
        "TOKEN_INVALID",
    ),
    "tampered payload": (
        lambda settings, claims, token: (
            token.split(".")[0] + "." + part({**claims, "sub": str(uuid.uuid4())}) + "." + token.split(".")[2]
        ),
        "TOKEN_INVALID",
    ),
    "tampered header": (
        lambda settings, claims, token: part({"alg": "HS512", "typ": "JWT"}) + token[token.index(".") :],
        "TOKEN_INVALID",
    ),
    "tampered signature": (
        lambda settings, claims, token: flipped(token, token.rindex(".") + 10),
        "TOKEN_INVALID",
    ),
    "truncated signature": (lambda settings, claims, token: token[:-4], "TOKEN_INVALID"),
    "no signature": (lambda settings, claims, token: token[: token.rindex(".") + 1], "TOKEN_INVALID"),
    "two segments": (lambda settings, claims, token: token[: token.rindex(".")], "TOKEN_INVALID"),
    "garbage": (lambda settings, claims, token: "not-a-jwt", "TOKEN_INVALID"),
}
# Each refusal is checked on a query whose root field is nullable (`me`) and on one that is not: no data
# either way.
PROBES = ("{ me { id email } }", "{ tasks(first: 1) { totalCount } }")


def no_data(body: dict[str, Any]) -> bool:
    data = body.get("data")
    return data is None or all(value is None for value in data.values())


@pytest.mark.parametrize("forgery", FORGERIES)
async def test_a_forged_or_stale_access_token_is_unauthenticated_with_a_stable_reason(
    gql: GraphQLClient, settings: Settings, alice: Account, forgery: str
) -> None:
    forge, reason = FORGERIES[forgery]
    token = forge(settings, claims_of(alice.token), alice.token)
    for document in PROBES:
        response = await gql.query(document, token=token)
        assert response.status < 500
        assert [error["extensions"] for error in response.errors] == [
            {"code": "UNAUTHENTICATED", "reason": reason}
        ], response.body
        assert no_data(response.body), response.body


async def test_a_refresh_token_is_no_access_token_and_an_access_token_no_refresh_token(
    gql: GraphQLClient, alice: Account
) -> None:
    as_access = await gql.query(PROBES[0], token=alice.refresh_token)
    assert as_access.errors[0]["extensions"] == {"code": "UNAUTHENTICATED", "reason": "TOKEN_INVALID"}
    assert no_data(as_access.body)
    as_refresh = await gql.run("RefreshToken", {"token": alice.token})
    assert as_refresh.errors[0]["extensions"] == {
        "code": "UNAUTHENTICATED",
        "reason": "REFRESH_TOKEN_INVALID",
    }
    assert as_refresh.data is None


async def test_an_access_token_of_an_ended_session_is_refused_at_once_even_after_a_cached_answer(
    gql: GraphQLClient, alice: Account
) -> None:
    assert (await gql.query(PROBES[1], token=alice.token)).ok()  # answered, cached, session state cached
    assert (await gql.query(PROBES[1], token=alice.token)).headers["x-cache"] == "HIT"
    (await gql.run("Logout", token=alice.token)).ok()
    for document in PROBES:
        response = await gql.query(document, token=alice.token)
        assert [error["extensions"] for error in response.errors] == [
            {"code": "UNAUTHENTICATED", "reason": "SESSION_REVOKED"}
        ], response.body
        assert no_data(response.body)


async def test_a_token_verified_before_is_refused_once_it_expires(
    gql: GraphQLClient, settings: Settings, alice: Account
) -> None:
    """Verified tokens are remembered (auth.tokens._verified): expiry is checked again on every use. (This
    one expired already, and is accepted for 2 s more, inside the leeway.)"""
    token = signed(settings, {**claims_of(alice.token), "exp": in_seconds(2 - settings.jwt_leeway_seconds)})
    assert (await gql.query(PROBES[0], token=token)).ok()["me"]["id"] == alice.id
    await asyncio.sleep(2.1)
    response = await gql.query(PROBES[0], token=token)
    assert response.errors[0]["extensions"] == {"code": "UNAUTHENTICATED", "reason": "TOKEN_EXPIRED"}


async def test_an_expired_token_asks_the_client_to_refresh(
    gql: GraphQLClient, settings: Settings, alice: Account
) -> None:
    token = signed(settings, {**claims_of(alice.token), "exp": past_the_leeway(settings)})
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
