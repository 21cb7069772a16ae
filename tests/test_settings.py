"""Insecure configuration is refused at startup, with a message that says how to fix it."""

from __future__ import annotations

import secrets

import pytest
from pydantic import ValidationError

from core.settings import Settings


@pytest.mark.parametrize("secret", ["short", "changeme" * 5, "x" * 64, "abcabcabcabcabcabcabcabcabcabcabc"])
def test_a_short_or_repetitive_jwt_secret_is_refused(secret: str) -> None:
    with pytest.raises(ValidationError, match="JWT_SECRET is shorter than 32 characters or too repetitive"):
        Settings(jwt_secret=secret)


def test_production_refuses_to_start_without_a_jwt_secret() -> None:
    with pytest.raises(ValidationError, match="JWT_SECRET must be set in production"):
        Settings(environment="production", jwt_secret=None)


def test_a_random_secret_is_accepted_and_never_printed() -> None:
    secret = secrets.token_urlsafe(48)
    settings = Settings(environment="production", jwt_secret=secret)
    assert settings.secret == secret
    assert secret not in repr(settings)
    assert secret not in str(settings.model_dump())


def test_graphiql_defaults_to_on_in_development_and_off_in_production() -> None:
    assert Settings().graphiql_enabled is True
    assert Settings(environment="production", jwt_secret=secrets.token_urlsafe(48)).graphiql_enabled is False


def test_a_replaced_setting_in_the_environment_is_refused_with_its_new_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DB_STATEMENT_TIMEOUT_MS", "15000")
    with pytest.raises(
        ValidationError, match="DB_STATEMENT_TIMEOUT_MS was replaced by DB_STATEMENT_TIMEOUT_SECONDS"
    ):
        Settings()
