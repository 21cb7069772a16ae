"""The per-request context: small typed parts, the one way resolvers write, and the operation's cost."""

from __future__ import annotations

import ast
import secrets
from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from auth.tokens import TokenConfig
from core.reader import Reader
from resolvers.context import Context
from schema.build import build_schema
from schema.extensions.query_limits import Limits
from tests.processes import ROOT

# Costs 1 (tasks) + 50 rows x 1 (owner): 51 points (schema/analysis/cost.py).
FIFTY_OWNERS = "{ tasks(first: 50) { edges { node { owner { name } } } } }"


def idle_context() -> Context:
    """A context for operations refused before they read or write anything (no server behind it)."""
    tokens = TokenConfig(
        secrets.token_urlsafe(48), "taskql", "taskql", timedelta(minutes=15), timedelta(days=30)
    )
    return Context(Reader(None, "primary"), async_sessionmaker(class_=AsyncSession), tokens)


def test_resolvers_write_only_in_the_transactions_the_context_opens() -> None:
    """``ctx.transaction()`` (and ``ctx.record`` in it) is the one way a write is done and its effects
    recorded: nothing below the schema begins or commits a transaction of its own (a savepoint inside the
    caller's transaction is its own business)."""
    found = [
        f"{path.relative_to(ROOT)}:{node.lineno}: .{node.func.attr}()"
        for package in ("resolvers", "auth")
        for path in sorted((ROOT / package).rglob("*.py"))
        if path != ROOT / "resolvers" / "context.py"
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in {"begin", "commit"}
    ]
    assert not found, found


def test_an_attribute_the_context_does_not_have_cannot_be_set_on_it() -> None:
    """Its parts are fixed: an old-style ``context.budget = ...`` fails at once instead of being ignored."""
    context = idle_context()
    with pytest.raises(AttributeError):
        context.budget = None  # type: ignore[attr-defined]
    context.hooks.budget = None


async def test_the_operations_cost_is_on_the_context_before_it_runs() -> None:
    context = idle_context()
    result = await build_schema().execute(FIFTY_OWNERS, context_value=context)
    # Refused by @auth (anonymous): nothing read, but its cost was estimated and admitted first.
    assert [error.extensions for error in result.errors or []] == [{"code": "UNAUTHENTICATED"}]
    assert context.points.cost == 51
    assert context.points.charge is None  # no budget: rate limits off


async def test_an_operation_refused_for_its_cost_has_its_cost_on_the_context() -> None:
    context = idle_context()
    result = await build_schema(limits=Limits(max_cost=50)).execute(FIFTY_OWNERS, context_value=context)
    [error] = result.errors or []
    assert error.extensions == {"code": "QUERY_TOO_COMPLEX", "cost": 51, "maxCost": 50}
    assert context.points.cost == 51


async def test_an_operation_refused_before_it_executes_has_no_cost() -> None:
    context = idle_context()
    result = await build_schema().execute("{ tasks { nope } }", context_value=context)
    assert [error.extensions for error in result.errors or []] == [{"code": "GRAPHQL_VALIDATION_FAILED"}]
    assert context.points.cost is None
