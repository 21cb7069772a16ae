"""Who may do what: seven personas against every query and mutation, and every nested field that decides
what a viewer sees, in one table (``MATRIX``: a row per operation, a column per persona).

The personas, in the world of ``tests.authz_world`` (rebuilt for every case); "the project" is Launch:
- anonymous: no token;
- non-member: Oscar, in no project of the others' (an invitation of Launch waits for his address);
- VIEWER: Vicky, a VIEWER of Launch;
- EDITOR: Eddie, its EDITOR, whose task "Draft the plan" it holds;
- OWNER: Alice, its OWNER, who also has personal tasks, a webhook and an inbox of her own;
- assignee: Bob, a VIEWER of Launch, assigned "Draft the plan" and the author of the comment on it;
- admin: Root, an admin and no member of Launch.

The rules (``resolvers.visibility``, the schema's descriptions): a personal task is its owner's alone; a
project's tasks are every member's, VIEWERs read and comment, EDITORs and the OWNER also change them, the
OWNER alone manages the project, its members and invitations; users see co-members by id and name (the
OWNER also by address); a webhook, a session and an inbox are their owner's alone, an admin's rights do not
reach them; an admin sees and changes everything else. What a viewer may not see is NOT_FOUND, exactly as
something missing; what they see but may not change is FORBIDDEN; no viewer at all is UNAUTHENTICATED.

A cell is the outcome: "ok" (no error), an error code, "null" (the row's field is null, with no error), or,
for a row about one value, that value. A refusal shows nothing of the world and writes nothing.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest
from redis.asyncio import Redis

from auth.tokens import TokenConfig
from core.ids import encode_id
from core.settings import Settings
from graphql import GraphQLObjectType, GraphQLSchema, get_named_type
from tests import authz_world
from tests.authz_world import (
    BOB_ASSIGNED,
    COMMENT_BODIES,
    EDDIE,
    EVERYONE,
    GLOBAL_IDS,
    HIDEOUT_TASK,
    LAUNCH,
    LAUNCH_INVITATION,
    MISSING_COMMENT,
    MISSING_INVITATION,
    MISSING_PROJECT,
    OSCAR,
    OSCAR_INVITATION,
    PROJECT_NAMES,
    SAM,
    SHIP,
    TEAM_COMMENT,
    TEAM_TASK,
    TITLES,
    VICKY,
)
from tests.factories import Account, register
from tests.fixed_world import (
    ALICE,
    BOB,
    MISSING_TASK,
    MISSING_USER,
    ROOT,
    TASKS,
    Person,
    access_token,
    snapshot,
)
from tests.graphql_client import GraphQLClient, Response
from tests.services import Services

PERSONAS: dict[str, Person | None] = {
    "anonymous": None,
    "non-member": OSCAR,
    "VIEWER": VICKY,
    "EDITOR": EDDIE,
    "OWNER": ALICE,
    "assignee": BOB,
    "admin": ROOT,
}
ALICES_TASK = TASKS[0]  # "Alice's secret plan": the OWNER persona's personal task
MISSING_SESSION = encode_id("Session", uuid.UUID(int=1))
MISSING_NOTIFICATION = encode_id("Notification", uuid.UUID(int=1))
WRONG = "not the password"


@dataclass
class World:
    gql: GraphQLClient
    connection: asyncpg.Connection
    tokens: TokenConfig

    def token(self, who: Person | None) -> str | None:
        return access_token(self.tokens, who) if who is not None else None

    async def ask(self, document: str, variables: dict[str, Any], who: Person | None) -> Response:
        """A trusted document by its name, or a query's text."""
        if "{" in document:
            return await self.gql.query(document, variables, token=self.token(who))
        return await self.gql.run(document, variables, token=self.token(who))


@pytest.fixture
async def world(http: httpx.AsyncClient, database: Services, settings: Settings) -> AsyncIterator[World]:
    connection = await asyncpg.connect(database.dsn)
    redis = Redis.from_url(database.redis_url)
    try:
        await authz_world.rebuild(connection, redis)
        yield World(GraphQLClient(http), connection, TokenConfig.of(settings))
    finally:
        await redis.aclose()
        await connection.close()


Variables = dict[str, Any] | Callable[[Person | None], dict[str, Any]]


@dataclass(frozen=True)
class Operation:
    """A request (a trusted document's name or a query's text, and its variables, which may depend on the
    persona); ``at``: where the field the row is about sits in ``data``, whose value decides the cell."""

    document: str
    variables: Variables | None = None
    at: tuple[str | int, ...] = ()
    literal: bool = False  # the cell is the field's value itself

    def variables_for(self, who: Person | None) -> dict[str, Any]:
        return (self.variables(who) if callable(self.variables) else self.variables) or {}

    def send(self, world: World, who: Person | None) -> Awaitable[Response]:
        return world.ask(self.document, self.variables_for(who), who)

    def outcome(self, response: Response) -> str:
        if response.errors:
            return str(response.codes[0])
        value = response.data
        for step in self.at:
            value = value[step]
        if value is None:
            return "null"
        if self.literal:
            return json.dumps(value) if isinstance(value, bool) else str(value)
        return "ok"


def node(type_name: str, selection: str) -> str:
    return f"query($id: ID!) {{ node(id: $id) {{ id ... on {type_name} {{ {selection} }} }} }}"


def task_field(selection: str) -> str:
    return f"query($id: ID!) {{ task(id: $id) {{ id {selection} }} }}"


def own_id(who: Person | None) -> str:
    return (who or ALICE).id


ON_LAUNCH = {"id": LAUNCH.id}
ON_TEAM_TASK = {"id": TEAM_TASK.id}
ON_ALICES_TASK = {"id": ALICES_TASK.id}
ON_EDDIE = {"id": EDDIE.id}
ON_ALICE = {"id": ALICE.id}
ON_TEAM_COMMENT = {"id": TEAM_COMMENT.id}
ON_OSCARS_INVITATION = {"id": OSCAR_INVITATION.id}
ON_ALICES_WEBHOOK = {"id": ALICE.webhook_id}

OPERATIONS: dict[str, Operation] = {
    # Query
    "me": Operation("Me"),
    "rateLimit": Operation("RateLimit"),
    "sessions": Operation("Sessions"),
    "failedJobs": Operation("FailedJobs"),
    "notificationSettings": Operation("NotificationSettings"),
    "notifications": Operation("Notifications"),
    "unreadNotificationCount": Operation("query { unreadNotificationCount }"),
    "webhooks": Operation("Webhooks"),
    "users": Operation("Users", {"first": 10}),
    "myInvitations": Operation("MyInvitations"),
    "projects": Operation("Projects"),
    "tasks": Operation("Tasks", {"first": 10}),
    "tasks (filter.ownerId: the OWNER)": Operation("Tasks", {"filter": {"ownerId": ALICE.id}}),
    "tasks (filter.projectId: the project)": Operation(
        "TeamTaskPage", {"first": 10, "filter": {"projectId": LAUNCH.id}}
    ),
    "tasks (filter.assigneeId: the assignee)": Operation(
        "TeamTaskPage", {"first": 10, "filter": {"assigneeId": BOB.id}}
    ),
    "taskStats": Operation("TaskStats"),
    "taskStats (ownerId: the OWNER)": Operation("TaskStats", {"ownerId": ALICE.id}),
    "taskStats (projectId: the project)": Operation("ProjectTaskStats", {"projectId": LAUNCH.id}),
    "task (the OWNER's personal task)": Operation("Task", ON_ALICES_TASK),
    "task (a task of the project)": Operation("Task", ON_TEAM_TASK),
    "node (the OWNER's personal task)": Operation("Node", ON_ALICES_TASK),
    "node (a task of the project)": Operation("Node", ON_TEAM_TASK),
    "node (the project)": Operation("Project", ON_LAUNCH),
    "node (the OWNER's User)": Operation("Node", ON_ALICE),
    "node (the non-member's User)": Operation("Node", {"id": OSCAR.id}),
    "node (a comment in the project)": Operation(node("Comment", "body"), ON_TEAM_COMMENT),
    "node (an invitation to no account)": Operation(
        node("ProjectInvitation", "email role"), {"id": LAUNCH_INVITATION.id}
    ),
    "node (the invitation to the non-member)": Operation(
        node("ProjectInvitation", "email role"), ON_OSCARS_INVITATION
    ),
    "node (the OWNER's notification)": Operation(
        node("Notification", "title"), {"id": ALICE.notification_id}
    ),
    "node (the OWNER's webhook)": Operation(node("Webhook", "url"), ON_ALICES_WEBHOOK),
    # Nested fields: each reached from an object the row's persona may or may not see
    "Project.viewerRole": Operation(node("Project", "viewerRole"), ON_LAUNCH, ("node", "viewerRole"), True),
    "Project.members": Operation(
        node("Project", "members(first: 10) { totalCount edges { node { role } } }"),
        ON_LAUNCH,
        ("node", "members"),
    ),
    "ProjectMember.user": Operation(
        node("Project", "members(first: 1) { edges { node { user { id name } } } }"),
        ON_LAUNCH,
        ("node", "members", "edges", 0, "node", "user"),
    ),
    "Project.invitations": Operation("ProjectInvitations", ON_LAUNCH, ("node", "invitations")),
    "Project.tasks": Operation("ProjectTasks", {**ON_LAUNCH, "first": 10}, ("node", "tasks")),
    "Project.taskStats": Operation(node("Project", "taskStats { total }"), ON_LAUNCH, ("node", "taskStats")),
    "Task.owner": Operation(task_field("owner { id name }"), ON_TEAM_TASK, ("task", "owner")),
    "Task.project": Operation(task_field("project { id name }"), ON_TEAM_TASK, ("task", "project")),
    "Task.assignee": Operation(task_field("assignee { id name }"), ON_TEAM_TASK, ("task", "assignee")),
    "Task.comments": Operation(
        task_field("comments(first: 5) { totalCount edges { node { id body } } }"),
        ON_TEAM_TASK,
        ("task", "comments"),
    ),
    "Task.activity": Operation(
        task_field("activity(first: 5) { totalCount edges { node { kind } } }"),
        ON_TEAM_TASK,
        ("task", "activity"),
    ),
    "TaskActivity.actor": Operation(
        task_field("activity(first: 1) { edges { node { actor { id name } } } }"),
        ON_TEAM_TASK,
        ("task", "activity", "edges", 0, "node", "actor"),
    ),
    "Comment.task": Operation(node("Comment", "task { id title }"), ON_TEAM_COMMENT, ("node", "task")),
    "Comment.author": Operation(node("Comment", "author { id name }"), ON_TEAM_COMMENT, ("node", "author")),
    "ProjectInvitation.project": Operation(
        node("ProjectInvitation", "project { id name }"), ON_OSCARS_INVITATION, ("node", "project")
    ),
    "ProjectInvitation.invitedBy": Operation(
        node("ProjectInvitation", "invitedBy { id name }"), ON_OSCARS_INVITATION, ("node", "invitedBy")
    ),
    "User.email (of the EDITOR)": Operation(node("User", "email"), ON_EDDIE, ("node", "email"), True),
    "User.email (of the OWNER)": Operation(node("User", "email"), ON_ALICE, ("node", "email"), True),
    "User.role (of the EDITOR)": Operation(node("User", "role"), ON_EDDIE, ("node", "role"), True),
    "User.isActive (of the EDITOR)": Operation(
        node("User", "isActive"), ON_EDDIE, ("node", "isActive"), True
    ),
    "User.createdAt (of the EDITOR)": Operation(node("User", "createdAt"), ON_EDDIE, ("node", "createdAt")),
    "User.emailVerified (of the EDITOR)": Operation(
        node("User", "emailVerified"), ON_EDDIE, ("node", "emailVerified"), True
    ),
    "User.tasks (of the OWNER)": Operation(
        node("User", "tasks(first: 10) { totalCount edges { node { title } } }"), ON_ALICE, ("node", "tasks")
    ),
    "User.taskStats (of the OWNER)": Operation(
        node("User", "taskStats { total }"), ON_ALICE, ("node", "taskStats")
    ),
    "Notification.task (the assignee's)": Operation(
        node("Notification", "task { id title }"), {"id": BOB_ASSIGNED.id}, ("node", "task")
    ),
    "Webhook.deliveries (the OWNER's webhook)": Operation(
        "WebhookDeliveries", ON_ALICES_WEBHOOK, ("node", "deliveries")
    ),
    # Mutation
    "createTask (a personal task)": Operation("CreateTask", {"input": {"title": "new"}}),
    "createTask (in the project)": Operation(
        "CreateTask", {"input": {"title": "new", "projectId": LAUNCH.id}}
    ),
    "updateTask (the OWNER's personal task)": Operation(
        "UpdateTask", {**ON_ALICES_TASK, "input": {"title": "changed"}}
    ),
    "updateTask (a task of the project)": Operation(
        "UpdateTask", {**ON_TEAM_TASK, "input": {"title": "changed"}}
    ),
    "updateTask (assigneeId, in the project)": Operation(
        "PlaceTask", {**ON_TEAM_TASK, "input": {"assigneeId": VICKY.id}}
    ),
    "updateTask (projectId null: out of it)": Operation(
        "PlaceTask", {**ON_TEAM_TASK, "input": {"projectId": None}}
    ),
    "updateTask (ownerId: her task given away)": Operation(
        "UpdateTask", {**ON_ALICES_TASK, "input": {"ownerId": SAM.id}}
    ),
    "deleteTask (the OWNER's personal task)": Operation("DeleteTask", ON_ALICES_TASK),
    "deleteTask (a task of the project)": Operation("DeleteTask", ON_TEAM_TASK),
    "createProject": Operation("CreateProject", {"input": {"name": "New"}}),
    "updateProject (the project)": Operation("UpdateProject", {**ON_LAUNCH, "input": {"name": "Renamed"}}),
    "deleteProject (the project)": Operation("DeleteProject", ON_LAUNCH),
    "inviteToProject (to the project)": Operation(
        "InviteToProject", {"projectId": LAUNCH.id, "email": "newbie@example.com", "role": "EDITOR"}
    ),
    "acceptInvitation (to the non-member)": Operation("AcceptInvitation", ON_OSCARS_INVITATION),
    "declineInvitation (to the non-member)": Operation("DeclineInvitation", ON_OSCARS_INVITATION),
    "revokeInvitation (to the non-member)": Operation("RevokeInvitation", ON_OSCARS_INVITATION),
    "revokeInvitation (to no account)": Operation("RevokeInvitation", {"id": LAUNCH_INVITATION.id}),
    "setProjectMemberRole (the VIEWER made an EDITOR)": Operation(
        "SetProjectMemberRole", {"projectId": LAUNCH.id, "userId": VICKY.id, "role": "EDITOR"}
    ),
    "setProjectMemberRole (the EDITOR made OWNER)": Operation(
        "SetProjectMemberRole", {"projectId": LAUNCH.id, "userId": EDDIE.id, "role": "OWNER"}
    ),
    "removeProjectMember (the assignee)": Operation(
        "RemoveProjectMember", {"projectId": LAUNCH.id, "userId": BOB.id}
    ),
    "removeProjectMember (themself: leaving)": Operation(
        "RemoveProjectMember", lambda who: {"projectId": LAUNCH.id, "userId": own_id(who)}
    ),
    "addComment (on a task of the project)": Operation("AddComment", {"taskId": TEAM_TASK.id, "body": "Hi"}),
    "addComment (on the OWNER's personal task)": Operation(
        "AddComment", {"taskId": ALICES_TASK.id, "body": "Hi"}
    ),
    "updateComment (the assignee's)": Operation("UpdateComment", {**ON_TEAM_COMMENT, "body": "Edited"}),
    "deleteComment (the assignee's)": Operation("DeleteComment", ON_TEAM_COMMENT),
    "setUserRole (the non-member made an admin)": Operation(
        "SetUserRole", {"userId": OSCAR.id, "role": "ADMIN"}
    ),
    "setUserActive (the non-member deactivated)": Operation(
        "SetUserActive", {"userId": OSCAR.id, "active": False}
    ),
    "verifyEmail (a bad token)": Operation("VerifyEmail", {"token": "not-a-token"}),
    "requestPasswordReset": Operation("RequestPasswordReset", {"email": ALICE.email}),
    "resetPassword (a bad token)": Operation(
        "ResetPassword", {"token": "not-a-token", "newPassword": "a long enough new password"}
    ),
    "resendVerificationEmail": Operation("ResendVerificationEmail"),
    "updateProfile": Operation("UpdateProfile", {"input": {"name": "Renamed"}}),
    "changePassword (a wrong current password)": Operation(
        "ChangePassword", {"currentPassword": WRONG, "newPassword": "a long enough new password"}
    ),
    "changeEmail (a wrong password)": Operation(
        "ChangeEmail", {"newEmail": "new@example.com", "password": WRONG}
    ),
    "revokeSession (a missing one)": Operation("RevokeSession", {"id": MISSING_SESSION}),
    "revokeSession (the OWNER's)": Operation("RevokeSession", {"id": encode_id("Session", ALICE.session)}),
    "requestDataExport": Operation("RequestDataExport"),
    "deleteAccount (a wrong password)": Operation("DeleteAccount", {"password": WRONG}),
    "sendPasswordReset (to the non-member)": Operation("SendPasswordReset", {"userId": OSCAR.id}),
    "retryJob (a missing job)": Operation("RetryJob", {"id": "900000000000001"}),
    "updateNotificationSettings": Operation(
        "UpdateNotificationSettings", {"input": {"remindBeforeMinutes": 30}}
    ),
    "markNotificationsRead": Operation("MarkNotificationsRead", {"all": True}),
    "createWebhook": Operation(
        "CreateWebhook", {"input": {"url": "https://93.184.215.14/hook", "events": ["TASK_CREATED"]}}
    ),
    "updateWebhook (the OWNER's)": Operation(
        "UpdateWebhook", {**ON_ALICES_WEBHOOK, "input": {"description": "x"}}
    ),
    "deleteWebhook (the OWNER's)": Operation("DeleteWebhook", ON_ALICES_WEBHOOK),
    "rotateWebhookSecret (the OWNER's)": Operation("RotateWebhookSecret", ON_ALICES_WEBHOOK),
    "testWebhook (the OWNER's)": Operation("TestWebhook", ON_ALICES_WEBHOOK),
    "retryWebhookDelivery (the OWNER's)": Operation("RetryWebhookDelivery", {"id": ALICE.delivery_id}),
}

OK, NULL = "ok", "null"
NF, FB, UA, BAD = "NOT_FOUND", "FORBIDDEN", "UNAUTHENTICATED", "BAD_USER_INPUT"
REFUSALS = {NF, FB, UA, BAD}


def row(*cells: str) -> dict[str, str]:
    assert len(cells) == len(PERSONAS), cells
    return dict(zip(PERSONAS, cells, strict=True))


EDDIE_S, ALICE_S = EDDIE.email, ALICE.email  # their addresses, in the rows about them

# The patterns that recur, column by column:
# - what is in the project: (UA, NF, OK, OK, OK, OK, OK), its members' and admins';
# - a change to its tasks: (UA, NF, FB, OK, OK, FB, OK), its EDITOR, OWNER and admins; VIEWERs see them;
# - managing the project, its members, its invitations: (UA, NF, FB, FB, OK, FB, OK), its OWNER and admins;
# - the OWNER persona's personal task: (UA, NF, NF, NF, OK, NF, OK), co-members do not see it;
# - the OWNER persona's webhook, session, inbox: (UA, NF, NF, NF, OK, NF, NF), an admin's rights stop there.
# fmt: off
MATRIX: dict[str, dict[str, str]] = {
    # Columns: anonymous, non-member, VIEWER, EDITOR, OWNER, assignee, admin.
    #                                                       anon   nonmbr VIEWER EDITOR OWNER  asgnee admin
    # Query. me: null when anonymous; rateLimit: the client address's own budget when anonymous.
    "me":                                               row(OK,    OK,    OK,    OK,    OK,    OK,    OK),
    "rateLimit":                                        row(OK,    OK,    OK,    OK,    OK,    OK,    OK),
    "sessions":                                         row(UA,    OK,    OK,    OK,    OK,    OK,    OK),
    "failedJobs":                                       row(UA,    FB,    FB,    FB,    FB,    FB,    OK),
    "notificationSettings":                             row(UA,    OK,    OK,    OK,    OK,    OK,    OK),
    "notifications":                                    row(UA,    OK,    OK,    OK,    OK,    OK,    OK),
    "unreadNotificationCount":                          row(UA,    OK,    OK,    OK,    OK,    OK,    OK),
    "webhooks":                                         row(UA,    OK,    OK,    OK,    OK,    OK,    OK),
    "users":                                            row(UA,    FB,    FB,    FB,    FB,    FB,    OK),
    "myInvitations":                                    row(UA,    OK,    OK,    OK,    OK,    OK,    OK),
    "projects":                                         row(UA,    OK,    OK,    OK,    OK,    OK,    OK),
    "tasks":                                            row(UA,    OK,    OK,    OK,    OK,    OK,    OK),
    # ownerId: their own, or a co-member's; assigneeId narrows what the viewer sees anyway.
    "tasks (filter.ownerId: the OWNER)":                row(UA,    NF,    OK,    OK,    OK,    OK,    OK),
    "tasks (filter.projectId: the project)":            row(UA,    NF,    OK,    OK,    OK,    OK,    OK),
    "tasks (filter.assigneeId: the assignee)":          row(UA,    OK,    OK,    OK,    OK,    OK,    OK),
    "taskStats":                                        row(UA,    OK,    OK,    OK,    OK,    OK,    OK),
    # Another owner's statistics: the user's and admins' alone, co-members' too.
    "taskStats (ownerId: the OWNER)":                   row(UA,    NF,    NF,    NF,    OK,    NF,    OK),
    "taskStats (projectId: the project)":               row(UA,    NF,    OK,    OK,    OK,    OK,    OK),
    "task (the OWNER's personal task)":                 row(UA,    NF,    NF,    NF,    OK,    NF,    OK),
    "task (a task of the project)":                     row(UA,    NF,    OK,    OK,    OK,    OK,    OK),
    "node (the OWNER's personal task)":                 row(UA,    NF,    NF,    NF,    OK,    NF,    OK),
    "node (a task of the project)":                     row(UA,    NF,    OK,    OK,    OK,    OK,    OK),
    "node (the project)":                               row(UA,    NF,    OK,    OK,    OK,    OK,    OK),
    # Co-members see each other.
    "node (the OWNER's User)":                          row(UA,    NF,    OK,    OK,    OK,    OK,    OK),
    "node (the non-member's User)":                     row(UA,    OK,    NF,    NF,    NF,    NF,    OK),
    "node (a comment in the project)":                  row(UA,    NF,    OK,    OK,    OK,    OK,    OK),
    "node (an invitation to no account)":               row(UA,    NF,    NF,    NF,    OK,    NF,    OK),
    "node (the invitation to the non-member)":          row(UA,    OK,    NF,    NF,    OK,    NF,    OK),
    "node (the OWNER's notification)":                  row(UA,    NF,    NF,    NF,    OK,    NF,    NF),
    "node (the OWNER's webhook)":                       row(UA,    NF,    NF,    NF,    OK,    NF,    NF),
    # Nested fields
    "Project.viewerRole": row(UA, NF, "VIEWER", "EDITOR", "OWNER", "VIEWER", NULL),
    "Project.members":                                  row(UA,    NF,    OK,    OK,    OK,    OK,    OK),
    "ProjectMember.user":                               row(UA,    NF,    OK,    OK,    OK,    OK,    OK),
    # Invitations: FORBIDDEN for the other members.
    "Project.invitations":                              row(UA,    NF,    FB,    FB,    OK,    FB,    OK),
    "Project.tasks":                                    row(UA,    NF,    OK,    OK,    OK,    OK,    OK),
    "Project.taskStats":                                row(UA,    NF,    OK,    OK,    OK,    OK,    OK),
    "Task.owner":                                       row(UA,    NF,    OK,    OK,    OK,    OK,    OK),
    "Task.project":                                     row(UA,    NF,    OK,    OK,    OK,    OK,    OK),
    "Task.assignee":                                    row(UA,    NF,    OK,    OK,    OK,    OK,    OK),
    "Task.comments":                                    row(UA,    NF,    OK,    OK,    OK,    OK,    OK),
    "Task.activity":                                    row(UA,    NF,    OK,    OK,    OK,    OK,    OK),
    "TaskActivity.actor":                               row(UA,    NF,    OK,    OK,    OK,    OK,    OK),
    "Comment.task":                                     row(UA,    NF,    OK,    OK,    OK,    OK,    OK),
    "Comment.author":                                   row(UA,    NF,    OK,    OK,    OK,    OK,    OK),
    # The invitee sees the project's name, and who invited them.
    "ProjectInvitation.project":                        row(UA,    OK,    NF,    NF,    OK,    NF,    OK),
    "ProjectInvitation.invitedBy":                      row(UA,    OK,    NF,    NF,    OK,    NF,    OK),
    # An address for the user, admins and the OWNER of a project the user is in; the rest the user's and
    # admins' alone.
    "User.email (of the EDITOR)": row(UA, NF, NULL, EDDIE_S, EDDIE_S, NULL, EDDIE_S),
    "User.email (of the OWNER)": row(UA, NF, NULL, NULL, ALICE_S, NULL, ALICE_S),
    "User.role (of the EDITOR)":                        row(UA,    NF,    NULL,  "USER",NULL,  NULL,  "USER"),
    "User.isActive (of the EDITOR)":                    row(UA,    NF,    NULL,  "true",NULL,  NULL,  "true"),
    "User.createdAt (of the EDITOR)":                   row(UA,    NF,    NULL,  OK,    NULL,  NULL,  OK),
    "User.emailVerified (of the EDITOR)":               row(UA,    NF,    NULL,  "true",NULL,  NULL,  "true"),
    # The tasks of the user the viewer may see (a co-member: the project's), their statistics only themselves.
    "User.tasks (of the OWNER)":                        row(UA,    NF,    OK,    OK,    OK,    OK,    OK),
    "User.taskStats (of the OWNER)":                    row(UA,    NF,    NULL,  NULL,  OK,    NULL,  OK),
    # The assignee's inbox, about a task they may see.
    "Notification.task (the assignee's)":               row(UA,    NF,    NF,    NF,    NF,    OK,    NF),
    "Webhook.deliveries (the OWNER's webhook)":         row(UA,    NF,    NF,    NF,    OK,    NF,    NF),
    # Mutation
    "createTask (a personal task)":                     row(UA,    OK,    OK,    OK,    OK,    OK,    OK),
    "createTask (in the project)":                      row(UA,    NF,    FB,    OK,    OK,    FB,    OK),
    "updateTask (the OWNER's personal task)":           row(UA,    NF,    NF,    NF,    OK,    NF,    OK),
    "updateTask (a task of the project)":               row(UA,    NF,    FB,    OK,    OK,    FB,    OK),
    "updateTask (assigneeId, in the project)":          row(UA,    NF,    FB,    OK,    OK,    FB,    OK),
    "updateTask (projectId null: out of it)":           row(UA,    NF,    FB,    OK,    OK,    FB,    OK),
    # Giving a task away is for admins, refused before the task is read.
    "updateTask (ownerId: her task given away)":        row(UA,    FB,    FB,    FB,    FB,    FB,    OK),
    "deleteTask (the OWNER's personal task)":           row(UA,    NF,    NF,    NF,    OK,    NF,    OK),
    "deleteTask (a task of the project)":               row(UA,    NF,    FB,    OK,    OK,    FB,    OK),
    "createProject":                                    row(UA,    OK,    OK,    OK,    OK,    OK,    OK),
    "updateProject (the project)":                      row(UA,    NF,    FB,    FB,    OK,    FB,    OK),
    "deleteProject (the project)":                      row(UA,    NF,    FB,    FB,    OK,    FB,    OK),
    "inviteToProject (to the project)":                 row(UA,    NF,    FB,    FB,    OK,    FB,    OK),
    "acceptInvitation (to the non-member)":             row(UA,    OK,    NF,    NF,    NF,    NF,    NF),
    "declineInvitation (to the non-member)":            row(UA,    OK,    NF,    NF,    NF,    NF,    NF),
    # The invitee sees the invitation but may not withdraw it (they decline it): FORBIDDEN.
    "revokeInvitation (to the non-member)":             row(UA,    FB,    NF,    NF,    OK,    NF,    OK),
    "revokeInvitation (to no account)":                 row(UA,    NF,    NF,    NF,    OK,    NF,    OK),
    "setProjectMemberRole (the VIEWER made an EDITOR)": row(UA,    NF,    FB,    FB,    OK,    FB,    OK),
    "setProjectMemberRole (the EDITOR made OWNER)":     row(UA,    NF,    FB,    FB,    OK,    FB,    OK),
    # Any member but the OWNER may leave; an admin who is no member is not one to remove.
    "removeProjectMember (the assignee)":               row(UA,    NF,    FB,    FB,    OK,    OK,    OK),
    "removeProjectMember (themself: leaving)":          row(UA,    NF,    OK,    OK,    BAD,   OK,    NF),
    # VIEWERs comment too.
    "addComment (on a task of the project)":            row(UA,    NF,    OK,    OK,    OK,    OK,    OK),
    "addComment (on the OWNER's personal task)":        row(UA,    NF,    NF,    NF,    OK,    NF,    OK),
    # Its author edits it; its author or the project's OWNER deletes it; admins both.
    "updateComment (the assignee's)":                   row(UA,    NF,    FB,    FB,    FB,    OK,    OK),
    "deleteComment (the assignee's)":                   row(UA,    NF,    FB,    FB,    OK,    OK,    OK),
    "setUserRole (the non-member made an admin)":       row(UA,    FB,    FB,    FB,    FB,    FB,    OK),
    "setUserActive (the non-member deactivated)":       row(UA,    FB,    FB,    FB,    FB,    FB,    OK),
    # Open to anyone: a token proves the right (a bad one is refused alike), an address gets a mail or not.
    "verifyEmail (a bad token)":                        row(BAD,   BAD,   BAD,   BAD,   BAD,   BAD,   BAD),
    "requestPasswordReset":                             row(OK,    OK,    OK,    OK,    OK,    OK,    OK),
    "resetPassword (a bad token)":                      row(BAD,   BAD,   BAD,   BAD,   BAD,   BAD,   BAD),
    "resendVerificationEmail":                          row(UA,    OK,    OK,    OK,    OK,    OK,    OK),
    "updateProfile":                                    row(UA,    OK,    OK,    OK,    OK,    OK,    OK),
    "changePassword (a wrong current password)":        row(UA,    BAD,   BAD,   BAD,   BAD,   BAD,   BAD),
    "changeEmail (a wrong password)":                   row(UA,    BAD,   BAD,   BAD,   BAD,   BAD,   BAD),
    "revokeSession (a missing one)":                    row(UA,    NF,    NF,    NF,    NF,    NF,    NF),
    "revokeSession (the OWNER's)":                      row(UA,    NF,    NF,    NF,    OK,    NF,    NF),
    "requestDataExport":                                row(UA,    OK,    OK,    OK,    OK,    OK,    OK),
    "deleteAccount (a wrong password)":                 row(UA,    BAD,   BAD,   BAD,   BAD,   BAD,   BAD),
    "sendPasswordReset (to the non-member)":            row(UA,    FB,    FB,    FB,    FB,    FB,    OK),
    "retryJob (a missing job)":                         row(UA,    FB,    FB,    FB,    FB,    FB,    NF),
    "updateNotificationSettings":                       row(UA,    OK,    OK,    OK,    OK,    OK,    OK),
    "markNotificationsRead":                            row(UA,    OK,    OK,    OK,    OK,    OK,    OK),
    "createWebhook":                                    row(UA,    OK,    OK,    OK,    OK,    OK,    OK),
    "updateWebhook (the OWNER's)":                      row(UA,    NF,    NF,    NF,    OK,    NF,    NF),
    "deleteWebhook (the OWNER's)":                      row(UA,    NF,    NF,    NF,    OK,    NF,    NF),
    "rotateWebhookSecret (the OWNER's)":                row(UA,    NF,    NF,    NF,    OK,    NF,    NF),
    "testWebhook (the OWNER's)":                        row(UA,    NF,    NF,    NF,    OK,    NF,    NF),
    "retryWebhookDelivery (the OWNER's)":               row(UA,    NF,    NF,    NF,    OK,    NF,    NF),
}
# fmt: on
CASES = [
    pytest.param(operation, who, expected, id=f"{operation}-{who}")
    for operation, cells in MATRIX.items()
    for who, expected in cells.items()
]
# What no refusal may show: every title, comment, project name, address and webhook of the world, and the
# ID of any object but those the request names.
SECRETS = [
    *TITLES.values(),
    *COMMENT_BODIES.values(),
    *PROJECT_NAMES.values(),
    *(person.email for person in EVERYONE),
    "dave@example.com",
    "frank@example.com",
    "for Alice only",
    "hook-of-",
]


def root_fields(schema: GraphQLSchema) -> set[str]:
    return {*schema.query_type.fields, *(schema.mutation_type.fields if schema.mutation_type else {})}  # type: ignore[union-attr]


def nested_fields(schema: GraphQLSchema) -> set[str]:
    """``Type.field`` for every field that leads from an object to another (a node, a list of them, task
    statistics), on every node type and every type a list holds, and the fields of a User shown to some
    viewers only."""
    node_interface = schema.get_type("Node")
    nodes = [
        t
        for t in schema.type_map.values()
        if isinstance(t, GraphQLObjectType) and node_interface in t.interfaces
    ]
    edges = [
        get_named_type(t.fields["edges"].type)
        for t in schema.type_map.values()
        if isinstance(t, GraphQLObjectType) and t.name.endswith("Connection")
    ]
    listed = [
        get_named_type(edge.fields["node"].type) for edge in edges if isinstance(edge, GraphQLObjectType)
    ]

    def leads_on(field_type: Any) -> bool:
        named = get_named_type(field_type)
        return isinstance(named, GraphQLObjectType) and (
            node_interface in named.interfaces
            or named.name.endswith("Connection")
            or named.name == "TaskStats"
        )

    found = {
        f"{owner.name}.{name}"
        for owner in {*nodes, *listed}
        if isinstance(owner, GraphQLObjectType)
        for name, field in owner.fields.items()
        if leads_on(field.type)
    }
    return found | {
        "Project.viewerRole",
        *(f"User.{name}" for name in ("email", "role", "isActive", "createdAt", "emailVerified")),
    }


def covered() -> set[str]:
    return {name.split(" (")[0] for name in MATRIX}


def test_the_matrix_covers_every_query_and_mutation() -> None:
    from schema.build import build_schema
    from schema.planning.strawberry_compat import graphql_schema_of

    assert set(OPERATIONS) == set(MATRIX)
    # Login, register, refresh and logout are open to anyone by design: test_auth_flow covers them.
    assert root_fields(graphql_schema_of(build_schema())) - covered() == {
        "register",
        "login",
        "refreshToken",
        "logout",
    }


def test_the_matrix_covers_every_nested_field_that_leads_to_another_object() -> None:
    from schema.build import build_schema
    from schema.planning.strawberry_compat import graphql_schema_of

    schema = graphql_schema_of(build_schema())
    assert nested_fields(schema) - covered() == set()
    assert {"Project.members", "Project.invitations", "Task.comments", "Comment.task"} <= nested_fields(
        schema
    )


def test_every_subscription_is_covered_over_websocket() -> None:
    """Subscriptions run over WebSocket only, where test_security_matrix covers them: taskEvents per owner
    (its ownerId row), notificationEvents per viewer (anonymous closed, each one's own inbox only)."""
    from schema.build import build_schema
    from schema.planning.strawberry_compat import graphql_schema_of

    subscription = graphql_schema_of(build_schema()).subscription_type
    assert subscription is not None
    assert set(subscription.fields) == {"taskEvents", "notificationEvents"}


@pytest.mark.parametrize(("operation", "who", "expected"), CASES)
async def test_authorization(world: World, operation: str, who: str, expected: str) -> None:
    before = await snapshot(world.connection)
    response = await OPERATIONS[operation].send(world, PERSONAS[who])
    assert OPERATIONS[operation].outcome(response) == expected, response.body
    if expected in REFUSALS:
        data = response.data
        assert data is None or all(value is None for value in data.values()), response.body
        shown, asked = (
            json.dumps(response.body),
            json.dumps(OPERATIONS[operation].variables_for(PERSONAS[who])),
        )
        assert [secret for secret in SECRETS if secret in shown] == [], response.body
        # Nor any object's ID but those asked for.
        assert [other for other in GLOBAL_IDS if other in shown and other not in asked] == [], response.body
        assert await snapshot(world.connection) == before, "a refusal wrote to the database"


def anonymized(response: Response, global_id: str) -> Any:
    body = {name: value for name, value in response.body.items() if name != "extensions"}  # the budget
    return json.loads(json.dumps(body).replace(global_id, "<id>"))


HIDDEN = [
    # (persona, document, what they may not see, a missing object of the same type)
    ("non-member", "Task", ALICES_TASK.id, MISSING_TASK),
    ("non-member", "Task", TEAM_TASK.id, MISSING_TASK),
    ("EDITOR", "Task", ALICES_TASK.id, MISSING_TASK),
    ("assignee", "Task", HIDEOUT_TASK.id, MISSING_TASK),
    ("non-member", "Node", LAUNCH.id, MISSING_PROJECT),
    ("non-member", "Node", TEAM_COMMENT.id, MISSING_COMMENT),
    ("non-member", "Node", ALICE.id, MISSING_USER),
    ("non-member", "Node", LAUNCH_INVITATION.id, MISSING_INVITATION),
    ("VIEWER", "Node", OSCAR_INVITATION.id, MISSING_INVITATION),
    ("OWNER", "Node", OSCAR.id, MISSING_USER),
    ("admin", "Node", ALICE.notification_id, MISSING_NOTIFICATION),
    ("non-member", "ProjectTaskStats", LAUNCH.id, MISSING_PROJECT),
]


@pytest.mark.parametrize(
    ("who", "document", "hidden", "missing"), HIDDEN, ids=[f"{h[0]}-{h[2]}" for h in HIDDEN]
)
async def test_what_a_persona_may_not_see_is_answered_exactly_like_a_missing_object(
    world: World, who: str, document: str, hidden: str, missing: str
) -> None:
    variable = "projectId" if document == "ProjectTaskStats" else "id"
    theirs = await world.ask(document, {variable: hidden}, PERSONAS[who])
    absent = await world.ask(document, {variable: missing}, PERSONAS[who])
    assert theirs.codes == ["NOT_FOUND"]
    assert anonymized(theirs, hidden) == anonymized(absent, missing)


VISIBLE_TITLES = {
    "non-member": {"Oscar's diary", "Oscar's hidden plan"},
    "VIEWER": {"Vicky's reading", "Ship the launch", "Draft the plan", "Side errand", "Lab experiment"},
    "EDITOR": {"Eddie's chores", "Ship the launch", "Draft the plan", "Lab experiment"},
    "OWNER": {
        "Alice's secret plan",
        "Deploy the backend",
        "Ship the launch",
        "Draft the plan",
        "Side errand",
    },
    "assignee": {"Bob's errand", "Ship the launch", "Draft the plan"},
    "admin": set(TITLES.values()),
}


@pytest.mark.parametrize("who", list(VISIBLE_TITLES))
async def test_each_persona_lists_their_personal_tasks_and_their_projects_tasks_only(
    world: World, who: str
) -> None:
    page = (await world.ask("TeamTaskPage", {"first": 50}, PERSONAS[who])).ok()["tasks"]
    assert {edge["node"]["title"] for edge in page["edges"]} == VISIBLE_TITLES[who]


async def test_me_tasks_holds_the_viewers_own_tasks_only(world: World) -> None:
    totals = {
        who: (await world.ask("MyTasks", {"first": 50}, PERSONAS[who])).ok()["me"]["tasks"]["totalCount"]
        for who in ("non-member", "VIEWER", "EDITOR", "OWNER", "assignee", "admin")
    }
    # Oscar: his diary and Hideout's task; Eddie: his chores and his task of Launch; Alice:
    # her two personal tasks and "Ship the launch"; Root: his audit and Lab's task.
    assert totals == {"non-member": 2, "VIEWER": 1, "EDITOR": 2, "OWNER": 3, "assignee": 1, "admin": 2}


async def test_an_admin_can_give_a_task_to_another_user(world: World) -> None:
    response = await world.ask("UpdateTask", {**ON_ALICES_TASK, "input": {"ownerId": OSCAR.id}}, ROOT)
    assert response.ok()["updateTask"]["owner"]["id"] == OSCAR.id
    assert (await world.ask("Task", ON_ALICES_TASK, ALICE)).codes == ["NOT_FOUND"]
    assert (await world.ask("Task", ON_ALICES_TASK, OSCAR)).ok()["task"]["title"] == ALICES_TASK.title


async def test_a_user_id_where_a_task_id_belongs_is_not_found(world: World) -> None:
    assert (await world.ask("Task", {"id": ALICE.id}, ALICE)).codes == ["NOT_FOUND"]


async def test_deleted_accounts_tokens_stop_working(world: World) -> None:
    await world.connection.execute("DELETE FROM users WHERE id = $1", OSCAR.key)
    assert (await world.ask("Tasks", {"first": 1}, OSCAR)).codes == ["UNAUTHENTICATED"]


async def test_registering_never_grants_admin(gql: GraphQLClient) -> None:
    account: Account = await register(gql, email="eve@example.com")
    assert (await gql.run("Users", {"first": 1}, token=account.token)).codes == ["FORBIDDEN"]


async def test_nested_paths_cannot_reach_another_users_tasks(world: World) -> None:
    nested = await world.ask(
        "query($other: ID!) { me { tasks(filter: {ownerId: $other}) { totalCount } } }",
        {"other": ALICE.id},
        OSCAR,
    )
    assert nested.codes == ["BAD_USER_INPUT"]  # User.tasks takes its owner from the parent, never a filter
    through_owner = task_field("owner { taskStats { total } tasks { edges { node { title } } } }")
    stranger = await world.ask(through_owner, ON_ALICES_TASK, OSCAR)
    assert stranger.codes == ["NOT_FOUND"]
    assert ALICES_TASK.title not in json.dumps(stranger.body)
    # A co-member reaches the OWNER through a task of the project: her name, not her personal tasks or
    # statistics.
    co_member = (await world.ask(through_owner, {"id": SHIP.id}, EDDIE)).ok()["task"]["owner"]
    assert co_member["taskStats"] is None
    assert [edge["node"]["title"] for edge in co_member["tasks"]["edges"]] == [TITLES[SHIP.id]]


async def test_the_personal_task_of_a_member_stays_out_of_every_project_path(world: World) -> None:
    """Alice's personal task is hers alone, whatever path a co-member takes: the project's tasks, a filter by
    owner, or the owner's list."""
    paths: list[tuple[str, dict[str, Any]]] = [
        ("ProjectTasks", {**ON_LAUNCH, "first": 50}),
        ("TeamTaskPage", {"first": 50, "filter": {"ownerId": ALICE.id}}),
        (node("User", "tasks(first: 50) { edges { node { title } } }"), ON_ALICE),
    ]
    for who in ("VIEWER", "EDITOR", "assignee"):
        for document, variables in paths:
            shown = json.dumps((await world.ask(document, variables, PERSONAS[who])).ok())
            assert ALICES_TASK.title not in shown, (who, document)
