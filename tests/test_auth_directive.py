"""@auth is enforced from the directive itself: a resolver with no check of its own is still guarded."""

from __future__ import annotations

import uuid

import strawberry

from auth.viewer import Viewer
from core.errors import AppError
from graphql import GraphQLError
from models import Role
from resolvers.context import Who
from schema.directives.auth import Auth, enforce_auth_directives
from schema.planning.strawberry_compat import graphql_schema_of


class FakeContext:
    """Not a mock of anything external: the context protocol the directive reads, for a unit schema."""

    def __init__(self, viewer: Viewer | None) -> None:
        self.who = Who(viewer)


@strawberry.type
class Query:
    @strawberry.field(directives=[Auth()])
    def secret(self) -> str:
        return "for users"

    @strawberry.field(directives=[Auth(requires=Role.ADMIN)])
    def admin_secret(self) -> str:
        return "for admins"

    @strawberry.field
    def public(self) -> str:
        return "for anyone"


@strawberry.type(directives=[Auth(requires=Role.ADMIN)])
class Vault:
    content: str = "gold"


@strawberry.type
class VaultQuery:
    @strawberry.field
    def vault(self) -> Vault:
        return Vault()


def viewer(role: Role) -> Viewer:
    return Viewer(user_id=uuid.uuid4(), session_id=uuid.uuid4(), role=role)


def run(schema: strawberry.Schema, query: str, who: Viewer | None) -> tuple[object, list[str]]:
    result = schema.execute_sync(query, context_value=FakeContext(who))
    errors: list[GraphQLError] = result.errors or []
    codes = [e.original_error.code if isinstance(e.original_error, AppError) else "?" for e in errors]
    return result.data, codes


def test_a_guarded_field_refuses_an_anonymous_caller_and_a_missing_role() -> None:
    schema = strawberry.Schema(query=Query)
    enforce_auth_directives(graphql_schema_of(schema))
    assert run(schema, "{ public }", None) == ({"public": "for anyone"}, [])
    assert run(schema, "{ secret }", None)[1] == ["UNAUTHENTICATED"]
    assert run(schema, "{ secret }", viewer(Role.USER))[0] == {"secret": "for users"}
    assert run(schema, "{ adminSecret }", viewer(Role.USER))[1] == ["FORBIDDEN"]
    assert run(schema, "{ adminSecret }", viewer(Role.ADMIN))[0] == {"adminSecret": "for admins"}


def test_auth_on_an_object_type_guards_every_field_of_it() -> None:
    schema = strawberry.Schema(query=VaultQuery)
    assert enforce_auth_directives(graphql_schema_of(schema)) == {"Vault.content": Role.ADMIN}
    assert run(schema, "{ vault { content } }", viewer(Role.USER))[1] == ["FORBIDDEN"]
    assert run(schema, "{ vault { content } }", viewer(Role.ADMIN))[0] == {"vault": {"content": "gold"}}
