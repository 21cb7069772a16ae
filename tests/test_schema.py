"""The schema is a reviewed artifact: the committed SDL matches the code, every field is described, and
@auth is declared in the SDL on exactly the fields the server guards."""

from __future__ import annotations

from pathlib import Path

from graphql import GraphQLField, GraphQLInputObjectType, GraphQLObjectType, GraphQLSchema
from models import Role
from schema.build import build_schema, sdl
from schema.directives.auth import enforce_auth_directives
from schema.planning.strawberry_compat import graphql_schema_of

SCHEMA_FILE = Path(__file__).resolve().parent.parent / "graphql" / "schema.graphql"


def test_the_committed_sdl_matches_the_code() -> None:
    assert SCHEMA_FILE.read_text() == sdl(), (
        "graphql/schema.graphql is stale: run `make schema` and commit it"
    )


def test_the_sdl_declares_the_auth_directive_and_uses_it() -> None:
    text = sdl()
    assert "directive @auth(requires: Role! = USER) on OBJECT | FIELD_DEFINITION" in text
    assert "filter: UserFilter = null): UserConnection! @auth(requires: ADMIN)" in text
    assert "createTask(input: CreateTaskInput!): Task! @auth(requires: USER)" in text


def _user_types(schema: GraphQLSchema) -> list[tuple[str, object]]:
    return [(name, kind) for name, kind in schema.type_map.items() if not name.startswith("__")]


def test_every_type_and_field_is_described() -> None:
    schema = graphql_schema_of(build_schema())
    missing: list[str] = []
    for name, kind in _user_types(schema):
        if isinstance(kind, GraphQLObjectType | GraphQLInputObjectType):
            if not kind.description:
                missing.append(name)
            fields: dict[str, object] = dict(kind.fields)
            missing += [
                f"{name}.{field}"
                for field, value in fields.items()
                if not getattr(value, "description", None)
            ]
    assert missing == []


def test_the_server_guards_exactly_the_fields_the_sdl_marks() -> None:
    guarded = enforce_auth_directives(
        graphql_schema_of(build_schema())
    )  # a fresh schema: enforcement is idempotent per build
    assert guarded == {
        "Query.task": Role.USER,
        "Query.tasks": Role.USER,
        "Query.taskStats": Role.USER,
        "Query.users": Role.ADMIN,
        "Mutation.createTask": Role.USER,
        "Mutation.updateTask": Role.USER,
        "Mutation.deleteTask": Role.USER,
        "Mutation.setUserRole": Role.ADMIN,
        "Mutation.setUserActive": Role.ADMIN,
        "Subscription.taskEvents": Role.USER,
        "Subscription.notificationEvents": Role.USER,
        "Query.sessions": Role.USER,
        "Query.failedJobs": Role.ADMIN,
        "Mutation.resendVerificationEmail": Role.USER,
        "Mutation.updateProfile": Role.USER,
        "Mutation.changePassword": Role.USER,
        "Mutation.changeEmail": Role.USER,
        "Mutation.revokeSession": Role.USER,
        "Mutation.requestDataExport": Role.USER,
        "Mutation.deleteAccount": Role.USER,
        "Mutation.sendPasswordReset": Role.ADMIN,
        "Mutation.retryJob": Role.ADMIN,
        "Query.notificationSettings": Role.USER,
        "Query.notifications": Role.USER,
        "Query.unreadNotificationCount": Role.USER,
        "Mutation.updateNotificationSettings": Role.USER,
        "Mutation.markNotificationsRead": Role.USER,
        "Query.webhooks": Role.USER,
        "Mutation.createWebhook": Role.USER,
        "Mutation.updateWebhook": Role.USER,
        "Mutation.deleteWebhook": Role.USER,
        "Mutation.rotateWebhookSecret": Role.USER,
        "Mutation.testWebhook": Role.USER,
        "Mutation.retryWebhookDelivery": Role.USER,
        "Query.projects": Role.USER,
        "Query.myInvitations": Role.USER,
        "Mutation.createProject": Role.USER,
        "Mutation.updateProject": Role.USER,
        "Mutation.deleteProject": Role.USER,
        "Mutation.inviteToProject": Role.USER,
        "Mutation.acceptInvitation": Role.USER,
        "Mutation.declineInvitation": Role.USER,
        "Mutation.revokeInvitation": Role.USER,
        "Mutation.setProjectMemberRole": Role.USER,
        "Mutation.removeProjectMember": Role.USER,
        "Mutation.addComment": Role.USER,
        "Mutation.updateComment": Role.USER,
        "Mutation.deleteComment": Role.USER,
    }


def test_ids_are_opaque_global_ids() -> None:
    schema = graphql_schema_of(build_schema())
    node = schema.type_map["Node"]
    implementations = {impl.name for impl in schema.get_possible_types(node)}  # type: ignore[arg-type]
    assert implementations == {
        "Comment",
        "Notification",
        "Project",
        "ProjectInvitation",
        "Task",
        "User",
        "Webhook",
    }
    field: GraphQLField = schema.type_map["Task"].fields["id"]  # type: ignore[attr-defined]
    assert str(field.type) == "ID!"
