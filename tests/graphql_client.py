"""A small GraphQL client over the HTTP endpoint, with operations read from ``graphql/queries``."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import httpx

QUERIES = Path(__file__).resolve().parent.parent / "graphql" / "queries"


@cache
def operation(name: str) -> str:
    return (QUERIES / f"{name}.graphql").read_text()


@dataclass
class Response:
    status: int
    body: dict[str, Any]
    headers: httpx.Headers

    @property
    def data(self) -> Any:
        return self.body.get("data")

    @property
    def errors(self) -> list[dict[str, Any]]:
        return list(self.body.get("errors") or [])

    @property
    def codes(self) -> list[str]:
        return [error.get("extensions", {}).get("code") for error in self.errors]

    def ok(self) -> Any:
        """The data, asserting there was no error."""
        assert not self.errors, self.errors
        return self.data


class GraphQLClient:
    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def query(
        self, document: str, variables: dict[str, Any] | None = None, *, token: str | None = None
    ) -> Response:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        payload: dict[str, Any] = {"query": document}
        if variables is not None:
            payload["variables"] = variables
        response = await self.http.post("/graphql", json=payload, headers=headers)
        return Response(response.status_code, response.json(), response.headers)

    async def run(
        self, name: str, variables: dict[str, Any] | None = None, *, token: str | None = None
    ) -> Response:
        """Run the stored operation ``graphql/queries/<name>.graphql``."""
        return await self.query(operation(name), variables, token=token)
