"""Test data made through the API, as a client would make it."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import asyncpg

from tests.graphql_client import GraphQLClient

PASSWORD = "a long enough passphrase"
_counter = itertools.count(1)


@dataclass
class Account:
    id: str
    email: str
    token: str
    refresh_token: str
    password: str = PASSWORD


async def register(gql: GraphQLClient, *, email: str | None = None, name: str = "Test User") -> Account:
    email = email or f"user{next(_counter)}@example.com"
    data = (await gql.run("Register", {"input": {"email": email, "password": PASSWORD, "name": name}})).ok()
    payload = data["register"]
    return Account(
        payload["user"]["id"], payload["user"]["email"], payload["accessToken"], payload["refreshToken"]
    )


async def promote_to_admin(dsn: str, account: Account) -> None:
    """Admins are made outside the API (the CLI's create-admin does the same)."""
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute("UPDATE users SET role = 'ADMIN' WHERE email = $1", account.email)
    finally:
        await connection.close()


async def create_task(gql: GraphQLClient, account: Account, **fields: Any) -> dict[str, Any]:
    fields.setdefault("title", f"Task {next(_counter)}")
    data = (await gql.run("CreateTask", {"input": fields}, token=account.token)).ok()
    return dict(data["createTask"])
