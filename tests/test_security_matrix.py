"""Every path that takes an ID, against every kind of ID, as a user, an admin and anonymous.

The paths are derived from the schema: each argument (or input field inside one) of type ``ID``. A new one
without a row in ``MATRIX`` fails ``test_the_matrix_has_a_row_for_every_argument_that_takes_an_id``.

Each path is tried with the viewer's own object, someone else's, a missing one, an ID of the wrong type
(a User's where a Task's belongs, and the reverse) and malformed IDs; where projects make more kinds, those
too: a co-member (a user sharing a project with the viewer), a project the viewer sees without owning it
and its task and comments, an invitation to the viewer's address, one they sent. The world is
``tests.authz_world``: Alice is the user, Root the admin; someone else is Oscar, who shares no project with
Alice (for the admin: Alice). What must hold:
- the outcome is the one in the matrix (``ok`` or an error code), for users and for admins' wider rights;
- someone else's object is answered exactly like a missing one (of the same type): same code, same
  message, same data, once the ID itself is masked
  (``test_someone_elses_object_is_answered_exactly_like_a_missing_one``);
- a refusal leaks nothing (no data, none of the other people's emails, names, titles, comments, projects,
  nor the ID of a stranger's object other than the one asked for) and writes nothing;
- a malformed ID is ``BAD_USER_INPUT`` naming the argument.

Elsewhere: the authorization matrix per operation (``test_authorization_matrix``), the JWT negative matrix
(``test_tokens``), refresh-token families (``test_auth_flow``), a subscriber never receiving another user's
events (``test_subscriptions``: ``test_a_user_receives_only_events_about_their_own_tasks`` and the move
between owners). Here also: one viewer's cached answer is never another's, by every form of request.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from auth.tokens import TokenConfig
from core.ids import encode_id
from core.settings import Settings
from graphql import GraphQLInputObjectType, GraphQLInputType, GraphQLObjectType, GraphQLSchema, get_named_type
from models import NotificationKind
from resolvers.inbox import encode_cursor as encode_inbox_cursor
from resolvers.notifications import notify
from schema.build import build_schema
from schema.planning.strawberry_compat import graphql_schema_of
from taskql.data.engine import async_url
from tests.authz_world import (
    ALICE_INVITATION,
    ALICES_COMMENT,
    BOBS_COMMENT,
    COMMENT_BODIES,
    EDDIE,
    EVERYONE,
    FRANK_INVITATION,
    HIDEOUT,
    HIDEOUT_COMMENT,
    HIDEOUT_TASK,
    LAB,
    LAB_COMMENT,
    LAB_TASK,
    LAUNCH,
    LAUNCH_INVITATION,
    MISSING_COMMENT,
    MISSING_INVITATION,
    MISSING_PROJECT,
    OSCAR,
    PERSONAL,
    PROJECT_NAMES,
    ROOT_INVITATION,
    SHIP,
    SIDE,
    SIDE_COMMENT,
    SIDE_TASK,
    TEAM_TASK,
    TITLES,
    VICKY,
    Thing,
    rebuild,
)
from tests.fixed_world import (
    ALICE,
    BOB,
    CAROL,
    MISSING_TASK,
    MISSING_USER,
    ROOT,
    TASKS,
    FixedTask,
    Person,
    access_token,
    snapshot,
)
from tests.processes import TEST_SECRET, servers_on
from tests.services import Services
from tests.ws_client import Closed, Subscriber, refused

# The world is ``tests.authz_world``'s: the fixed world with projects around it.
VIEWERS = {"user": ALICE, "admin": ROOT}
# Whose objects count as "someone else's": a stranger's for a user (Oscar shares no project with Alice),
# another user's for an admin (admins may see them).
OTHERS = {"user": OSCAR, "admin": ALICE}
# A user who shares a project with the viewer: Bob is a VIEWER of Alice's Launch, Eddie the EDITOR of Root's
# Lab.
CO_MEMBERS = {"user": BOB, "admin": EDDIE}
# A project of the viewer's own (they are its OWNER); one they see without owning it (Alice is a VIEWER of
# Sam's Side quest; Root, an admin, is no member of it); someone else's (Oscar's Hideout; for an admin,
# Alice's Launch).
OWN_PROJECTS = {"user": LAUNCH, "admin": LAB}
OTHERS_PROJECTS = {"user": HIDEOUT, "admin": LAUNCH}
# A task of the viewer's own project, and a task of someone else's project.
OWN_PROJECT_TASKS = {"user": SHIP, "admin": LAB_TASK}
OTHERS_PROJECT_TASKS = {"user": HIDEOUT_TASK, "admin": TEAM_TASK}
# Invitations: of the viewer's own project (to someone else); to the viewer's address; someone else's.
OWN_INVITATIONS = {"user": LAUNCH_INVITATION, "admin": ALICE_INVITATION}
INVITATIONS_TO_ME = {"user": ALICE_INVITATION, "admin": ROOT_INVITATION}
OTHERS_INVITATIONS = {"user": FRANK_INVITATION, "admin": LAUNCH_INVITATION}
# Comments: the viewer's own; another member's in the viewer's own project (Bob's, in Launch); another
# member's where the viewer is a VIEWER (Sam's, in Side quest); someone else's.
OWN_COMMENTS = {"user": ALICES_COMMENT, "admin": LAB_COMMENT}
OTHERS_COMMENTS = {"user": HIDEOUT_COMMENT, "admin": ALICES_COMMENT}


def own_task(person: Person) -> FixedTask | Thing:
    """The person's personal task (their first)."""
    return next((task for task in TASKS if task.owner == person), None) or PERSONAL[person]


def _b64(text: str | bytes) -> str:
    raw = text.encode() if isinstance(text, str) else text
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


MALFORMED: dict[str, Any] = {
    "malformed:empty": "",
    "malformed:word": "nope",
    "malformed:not-a-uuid": _b64("Task:not-a-uuid"),
    "malformed:no-key": _b64("Task"),
    "malformed:not-encoded": f"Task:{own_task(ALICE).key}",
    "malformed:not-utf8": _b64(b"\xff\xfe:\x00"),
    "malformed:huge": "VGFzazo" * 1000,
    "malformed:integer": 12345,  # a JSON number is a valid ID value: it becomes "12345"
}


def task_ids(viewer: str) -> dict[str, Any]:
    me, other = VIEWERS[viewer], OTHERS[viewer]
    return {
        "own": own_task(me).id,
        "seen": SIDE_TASK.id,  # a task of a project the viewer sees (Alice as a VIEWER, Root as an admin)
        "others": own_task(other).id,
        "others_shared": OTHERS_PROJECT_TASKS[viewer].id,  # a task of someone else's project
        "missing": MISSING_TASK,
        "wrong_type": me.id,  # the viewer's own User ID where a Task's belongs
        **MALFORMED,
    }


def user_ids(viewer: str) -> dict[str, Any]:
    me, other = VIEWERS[viewer], OTHERS[viewer]
    return {
        "own": me.id,
        "co_member": CO_MEMBERS[viewer].id,
        "others": other.id,
        "missing": MISSING_USER,
        "wrong_type": own_task(me).id,  # the viewer's own Task ID where a User's belongs
        **MALFORMED,
    }


def project_ids(viewer: str) -> dict[str, Any]:
    return {
        "own": OWN_PROJECTS[viewer].id,
        "seen": SIDE.id,
        "others": OTHERS_PROJECTS[viewer].id,
        "missing": MISSING_PROJECT,
        "wrong_type": own_task(VIEWERS[viewer]).id,  # the viewer's own Task ID where a Project's belongs
        **MALFORMED,
    }


def invitation_ids(viewer: str) -> dict[str, Any]:
    return {
        "own": OWN_INVITATIONS[viewer].id,
        "to_me": INVITATIONS_TO_ME[viewer].id,
        "others": OTHERS_INVITATIONS[viewer].id,
        "missing": MISSING_INVITATION,
        "wrong_type": OWN_PROJECTS[viewer].id,  # the viewer's own Project's ID where an invitation's belongs
        **MALFORMED,
    }


def invitations_to_accept(viewer: str) -> dict[str, Any]:
    """An invitation is the viewer's own to accept when it is to their address; the one they sent (of their
    own project, to someone else) is not."""
    return {
        "own": INVITATIONS_TO_ME[viewer].id,
        "sent": OWN_INVITATIONS[viewer].id,
        "others": OTHERS_INVITATIONS[viewer].id,
        "missing": MISSING_INVITATION,
        "wrong_type": OWN_PROJECTS[viewer].id,
        **MALFORMED,
    }


def comment_ids(viewer: str) -> dict[str, Any]:
    return {
        "own": OWN_COMMENTS[viewer].id,
        "seen": BOBS_COMMENT.id,  # Bob's, on a task of Launch (Alice is its OWNER)
        "seen_elsewhere": SIDE_COMMENT.id,  # Sam's, on a task of Side quest (Alice is its VIEWER)
        "others": OTHERS_COMMENTS[viewer].id,
        "missing": MISSING_COMMENT,
        "wrong_type": own_task(VIEWERS[viewer]).id,
        **MALFORMED,
    }


def node_ids(viewer: str) -> dict[str, Any]:
    me, other = VIEWERS[viewer], OTHERS[viewer]
    return {
        **task_ids(viewer),
        "wrong_type": encode_id("Secret", own_task(me).key),  # no such type
        "own_user": me.id,
        "co_member_user": CO_MEMBERS[viewer].id,
        "others_user": other.id,
        "missing_user": MISSING_USER,
        "own_notification": me.notification_id,
        "others_notification": other.notification_id,
        "missing_notification": encode_id("Notification", uuid.UUID("dead0000-0000-4000-8000-000000000007")),
        "own_webhook": me.webhook_id,
        "others_webhook": other.webhook_id,
        "missing_webhook": encode_id("Webhook", uuid.UUID("dead0000-0000-4000-8000-000000000008")),
        "own_project": OWN_PROJECTS[viewer].id,
        "seen_project": SIDE.id,
        "others_project": OTHERS_PROJECTS[viewer].id,
        "missing_project": MISSING_PROJECT,
        "own_invitation": OWN_INVITATIONS[viewer].id,
        "to_me_invitation": INVITATIONS_TO_ME[viewer].id,
        "others_invitation": OTHERS_INVITATIONS[viewer].id,
        "missing_invitation": MISSING_INVITATION,
        "own_comment": OWN_COMMENTS[viewer].id,
        "seen_comment": BOBS_COMMENT.id,
        "others_comment": OTHERS_COMMENTS[viewer].id,
        "missing_comment": MISSING_COMMENT,
    }


@dataclass(frozen=True)
class Row:
    """One path: its document (the ID goes in ``$id``), the IDs to try, the argument a malformed one is
    reported on, and the outcome per viewer and kind of ID (kinds not listed: BAD_USER_INPUT for
    malformed ones)."""

    document: str
    ids: Callable[[str], dict[str, Any]]
    field: str
    expected: dict[str, dict[str, str]]
    more_variables: Callable[[str], dict[str, Any]] = lambda viewer: {}
    writes: bool = False
    typed: bool = True  # the ID must name one type (node(id:) takes any)

    def outcome(self, viewer: str, kind: str) -> str:
        default = "BAD_USER_INPUT" if kind.startswith("malformed:") else None
        value = self.expected[viewer].get(kind, default)
        assert value is not None, (viewer, kind)
        return value


def owned_ids(
    type_name: str, of: Callable[[Person], str], missing: int, wrong_type: Callable[[Person], str]
) -> Callable[[str], dict[str, Any]]:
    """The IDs to try on a path that takes one of a person's own objects of ``type_name``: the viewer's
    (``of``), another person's, a missing one, another type's (``wrong_type``) and malformed ones."""

    def ids(viewer: str) -> dict[str, Any]:
        me, other = VIEWERS[viewer], OTHERS[viewer]
        return {
            "own": of(me),
            "others": of(other),
            "missing": encode_id(type_name, uuid.UUID(f"dead0000-0000-4000-8000-{missing:012d}")),
            "wrong_type": wrong_type(me),
            **MALFORMED,
        }

    return ids


session_ids = owned_ids("Session", lambda p: encode_id("Session", p.session), 3, lambda p: p.id)
notification_ids = owned_ids("Notification", lambda p: p.notification_id, 4, lambda p: own_task(p).id)
webhook_ids = owned_ids("Webhook", lambda p: p.webhook_id, 5, lambda p: own_task(p).id)
delivery_ids = owned_ids("WebhookDelivery", lambda p: p.delivery_id, 6, lambda p: p.webhook_id)


def job_ids(viewer: str) -> dict[str, Any]:
    """Jobs have numbers, not global IDs; none is failed in the world: every number is NOT_FOUND."""
    numbers = {"own": "900000000000001", "others": "900000000000002", "missing": "900000000000999"}
    return {**numbers, "wrong_type": VIEWERS[viewer].id, **MALFORMED}


OK, NF, FB, BAD = "ok", "NOT_FOUND", "FORBIDDEN", "BAD_USER_INPUT"
OWN_ONLY = {"own": OK, "others": NF, "missing": NF, "wrong_type": NF}
# Tasks: the viewer's own personal task; a task of a project they see (Alice: as a VIEWER); a stranger's
# personal task and one of a stranger's project; an admin sees and changes them all.
TASK_READ = {"own": OK, "seen": OK, "others": NF, "others_shared": NF, "missing": NF, "wrong_type": NF}
TASK_WRITE = {**TASK_READ, "seen": FB}
ANY_TASK = {**TASK_READ, "others": OK, "others_shared": OK}
# Users: the viewer, a co-member (seen by id and name), a stranger.
USER_KINDS = ("own", "co_member", "others", "missing", "wrong_type")
SELF_ONLY = {"own": OK, "co_member": NF, "others": NF, "missing": NF, "wrong_type": NF}
SELF_OR_CO_MEMBER = {**SELF_ONLY, "co_member": OK}
ANY_USER = {**SELF_OR_CO_MEMBER, "others": OK}
# An assignee filter narrows what the viewer sees anyway: a stranger's ID finds nothing, as a missing one.
ANY_ASSIGNEE = {"own": OK, "co_member": OK, "others": OK, "missing": OK, "wrong_type": NF}
# An assignee must be a member of the task's project: the same refusal whether or not the user exists.
MEMBER_ASSIGNEE = {"own": OK, "co_member": OK, "others": BAD, "missing": BAD, "wrong_type": NF}
# A member of the viewer's own project, by userId: the OWNER (the viewer) cannot leave nor stop being one.
MEMBER_OF_MINE = {"own": BAD, "co_member": OK, "others": NF, "missing": NF, "wrong_type": NF}
# Projects: the viewer's own (OWNER), one they see (Alice: a VIEWER), a stranger's.
PROJECT_READ = {"own": OK, "seen": OK, "others": NF, "missing": NF, "wrong_type": NF}
PROJECT_CHANGE = {**PROJECT_READ, "seen": FB}
ANY_PROJECT = {**PROJECT_READ, "others": OK}
# Invitations: of the viewer's own project, to the viewer's address (seen, not theirs to withdraw),
# someone else's.
REVOKE = {"own": OK, "to_me": FB, "others": NF, "missing": NF, "wrong_type": NF}
ANY_INVITATION = {**REVOKE, "to_me": OK, "others": OK}
# Accepting or declining: only an invitation to the viewer's own address, admins too.
TO_MY_ADDRESS = {"own": OK, "sent": NF, "others": NF, "missing": NF, "wrong_type": NF}
# Comments: the viewer's own, another's on a task of their own project, another's where they are a VIEWER,
# a stranger's. Its author edits it; its author or the project's OWNER deletes it; an admin both.
EDIT_COMMENT = {"own": OK, "seen": FB, "seen_elsewhere": FB, "others": NF, "missing": NF, "wrong_type": NF}
DELETE_COMMENT = {**EDIT_COMMENT, "seen": OK}
ANY_COMMENT = {**EDIT_COMMENT, "seen": OK, "seen_elsewhere": OK, "others": OK}
# An inbox is its owner's alone: an admin does not see another's notification either; so are a user's
# webhooks and their deliveries.
PRIVATE_TO_EACH = {
    "own_notification": OK, "others_notification": NF, "missing_notification": NF,
    "own_webhook": OK, "others_webhook": NF, "missing_webhook": NF,
}  # fmt: skip
NODE_USER = {
    **TASK_READ,
    **{f"{kind}_user": outcome for kind, outcome in SELF_OR_CO_MEMBER.items() if kind != "wrong_type"},
    **PRIVATE_TO_EACH,
    **{f"{kind}_project": outcome for kind, outcome in PROJECT_READ.items() if kind != "wrong_type"},
    "own_invitation": OK, "to_me_invitation": OK, "others_invitation": NF, "missing_invitation": NF,
    "own_comment": OK, "seen_comment": OK, "others_comment": NF, "missing_comment": NF,
}  # fmt: skip
NODE_ADMIN = {
    **ANY_TASK,
    **{f"{kind}_user": outcome for kind, outcome in ANY_USER.items() if kind != "wrong_type"},
    **PRIVATE_TO_EACH,
    **{f"{kind}_project": outcome for kind, outcome in ANY_PROJECT.items() if kind != "wrong_type"},
    "own_invitation": OK, "to_me_invitation": OK, "others_invitation": OK, "missing_invitation": NF,
    "own_comment": OK, "seen_comment": OK, "others_comment": OK, "missing_comment": NF,
}  # fmt: skip
ANONYMOUS = {"others": "UNAUTHENTICATED", "missing": "UNAUTHENTICATED"}
# Refused before the ID is read.
ADMINS_ONLY = dict.fromkeys((*USER_KINDS, *MALFORMED), FB)
ON_OTHERS = {**ANY_USER, "own": BAD}
NEVER = dict.fromkeys(USER_KINDS, BAD)
# Anonymous: `me` is null, so there is no User.tasks to refuse.
NO_ME = {"others": OK, "missing": OK}


def own_project(viewer: str) -> str:
    return OWN_PROJECTS.get(viewer, LAUNCH).id


def in_project(filter_name: str) -> str:
    """Project.tasks of the viewer's own project, filtered by ``filter_name``."""
    return (
        f"query($project: ID!, $id: ID) {{ node(id: $project) {{ ... on Project {{"
        f" tasks(first: 10, filter: {{{filter_name}: $id}}) {{ totalCount edges {{ node {{ title }} }} }}"
        " } } }"
    )


def viewers_own(things: dict[str, Thing], name: str) -> Callable[[str], dict[str, Any]]:
    return lambda viewer: {name: things.get(viewer, things["user"]).id}


ON_OWN_PROJECT = viewers_own(OWN_PROJECTS, "project")


def on_vicky(viewer: str) -> dict[str, Any]:
    """Vicky is a member of every project but Hideout, never its OWNER."""
    return {"user": VICKY.id}


MATRIX: dict[str, Row] = {
    "Query.task(id)": Row(
        "query($id: ID!) { task(id: $id) { id title owner { email } } }",
        task_ids,
        "id",
        {"user": TASK_READ, "admin": ANY_TASK, "anonymous": ANONYMOUS},
    ),
    "Query.node(id)": Row(
        "query($id: ID!) { node(id: $id) { id ... on Task { title } ... on User { email name }"
        " ... on Notification { title } ... on Webhook { url } ... on Project { name }"
        " ... on ProjectInvitation { invited: email } ... on Comment { body } } }",
        node_ids,
        "id",
        {"user": NODE_USER, "admin": NODE_ADMIN, "anonymous": ANONYMOUS},
        typed=False,
    ),
    "Query.tasks(filter.ownerId)": Row(
        "query($id: ID) { tasks(first: 10, filter: {ownerId: $id}) { totalCount edges { node { title } } } }",
        user_ids,
        "filter.ownerId",
        # A user's own, or a co-member's (those of their tasks the viewer sees).
        {"user": SELF_OR_CO_MEMBER, "admin": ANY_USER, "anonymous": ANONYMOUS},
    ),
    "Query.tasks(filter.projectId)": Row(
        "query($id: ID) { tasks(first: 10, filter: {projectId: $id})"
        " { totalCount edges { node { title } } } }",
        project_ids,
        "filter.projectId",
        {"user": PROJECT_READ, "admin": ANY_PROJECT, "anonymous": ANONYMOUS},
    ),
    "Query.tasks(filter.assigneeId)": Row(
        "query($id: ID) { tasks(first: 10, filter: {assigneeId: $id})"
        " { totalCount edges { node { title } } } }",
        user_ids,
        "filter.assigneeId",
        {"user": ANY_ASSIGNEE, "admin": ANY_ASSIGNEE, "anonymous": ANONYMOUS},
    ),
    "Query.taskStats(ownerId)": Row(
        "query($id: ID) { taskStats(ownerId: $id) { total overdue } }",
        user_ids,
        "ownerId",
        # The user's own statistics and admins' alone: a co-member's too are NOT_FOUND.
        {"user": SELF_ONLY, "admin": ANY_USER, "anonymous": ANONYMOUS},
    ),
    "Query.taskStats(projectId)": Row(
        "query($id: ID) { taskStats(projectId: $id) { total overdue } }",
        project_ids,
        "projectId",
        {"user": PROJECT_READ, "admin": ANY_PROJECT, "anonymous": ANONYMOUS},
    ),
    "User.tasks(filter.ownerId)": Row(
        # The owner of User.tasks is the parent: a filter naming one is refused, whoever it names.
        "query($id: ID) { me { tasks(filter: {ownerId: $id}) { totalCount edges { node { title } } } } }",
        user_ids,
        "filter.ownerId",
        {"user": NEVER, "admin": NEVER, "anonymous": NO_ME},
    ),
    "User.tasks(filter.projectId)": Row(
        "query($id: ID) { me { tasks(filter: {projectId: $id}) { totalCount edges { node { title } } } } }",
        project_ids,
        "filter.projectId",
        {"user": PROJECT_READ, "admin": ANY_PROJECT, "anonymous": NO_ME},
    ),
    "User.tasks(filter.assigneeId)": Row(
        "query($id: ID) { me { tasks(filter: {assigneeId: $id}) { totalCount edges { node { title } } } } }",
        user_ids,
        "filter.assigneeId",
        {"user": ANY_ASSIGNEE, "admin": ANY_ASSIGNEE, "anonymous": NO_ME},
    ),
    "Project.tasks(filter.ownerId)": Row(
        in_project("ownerId"),
        user_ids,
        "filter.ownerId",
        {"user": SELF_OR_CO_MEMBER, "admin": ANY_USER, "anonymous": ANONYMOUS},
        more_variables=ON_OWN_PROJECT,
    ),
    "Project.tasks(filter.projectId)": Row(
        # The project of Project.tasks is the parent: a filter naming one is refused, whichever it names.
        in_project("projectId"),
        project_ids,
        "filter.projectId",
        {
            "user": dict.fromkeys(PROJECT_READ, BAD),
            "admin": dict.fromkeys(PROJECT_READ, BAD),
            "anonymous": ANONYMOUS,
        },
        more_variables=ON_OWN_PROJECT,
    ),
    "Project.tasks(filter.assigneeId)": Row(
        in_project("assigneeId"),
        user_ids,
        "filter.assigneeId",
        {"user": ANY_ASSIGNEE, "admin": ANY_ASSIGNEE, "anonymous": ANONYMOUS},
        more_variables=ON_OWN_PROJECT,
    ),
    "Mutation.createTask(input.projectId)": Row(
        'mutation($id: ID) { createTask(input: {title: "new", projectId: $id}) { id project { name } } }',
        project_ids,
        "input.projectId",
        # A VIEWER adds no task to a project (FORBIDDEN); an admin may to any.
        {"user": PROJECT_CHANGE, "admin": ANY_PROJECT, "anonymous": ANONYMOUS},
        writes=True,
    ),
    "Mutation.createTask(input.assigneeId)": Row(
        "mutation($project: ID, $id: ID) {"
        ' createTask(input: {title: "new", projectId: $project, assigneeId: $id}) { id assignee { name } } }',
        user_ids,
        "input.assigneeId",
        # In the viewer's own project: a member of it, not anyone else (an admin's wider rights neither).
        {"user": MEMBER_ASSIGNEE, "admin": MEMBER_ASSIGNEE, "anonymous": ANONYMOUS},
        more_variables=ON_OWN_PROJECT,
        writes=True,
    ),
    "Mutation.updateTask(id)": Row(
        'mutation($id: ID!) { updateTask(id: $id, input: {title: "changed"}) { id title } }',
        task_ids,
        "id",
        {"user": TASK_WRITE, "admin": ANY_TASK, "anonymous": ANONYMOUS},
        writes=True,
    ),
    "Mutation.updateTask(input.ownerId)": Row(
        "mutation($task: ID!, $id: ID) {"
        " updateTask(id: $task, input: {ownerId: $id}) { id owner { email } } }",
        user_ids,
        "input.ownerId",
        {
            # A user may not give a task away: to someone, or to no one, it is the same refusal.
            "user": {**dict.fromkeys(USER_KINDS, FB), "own": OK, "wrong_type": NF},
            "admin": ANY_USER,
            "anonymous": ANONYMOUS,
        },
        more_variables=lambda viewer: {"task": own_task(VIEWERS.get(viewer, ALICE)).id},
        writes=True,
    ),
    "Mutation.updateTask(input.projectId)": Row(
        "mutation($task: ID!, $id: ID) {"
        " updateTask(id: $task, input: {projectId: $id}) { id project { name } } }",
        project_ids,
        "input.projectId",
        # The viewer's personal task, moved into a project: as its EDITOR or OWNER (or an admin).
        {"user": PROJECT_CHANGE, "admin": ANY_PROJECT, "anonymous": ANONYMOUS},
        more_variables=lambda viewer: {"task": own_task(VIEWERS.get(viewer, ALICE)).id},
        writes=True,
    ),
    "Mutation.updateTask(input.assigneeId)": Row(
        "mutation($task: ID!, $id: ID) {"
        " updateTask(id: $task, input: {assigneeId: $id}) { id assignee { name } } }",
        user_ids,
        "input.assigneeId",
        # A task of the viewer's own project.
        {"user": MEMBER_ASSIGNEE, "admin": MEMBER_ASSIGNEE, "anonymous": ANONYMOUS},
        more_variables=viewers_own(OWN_PROJECT_TASKS, "task"),
        writes=True,
    ),
    "Mutation.deleteTask(id)": Row(
        "mutation($id: ID!) { deleteTask(id: $id) }",
        task_ids,
        "id",
        {"user": TASK_WRITE, "admin": ANY_TASK, "anonymous": ANONYMOUS},
        writes=True,
    ),
    "Mutation.updateProject(id)": Row(
        'mutation($id: ID!) { updateProject(id: $id, input: {name: "Renamed"}) { id name } }',
        project_ids,
        "id",
        {"user": PROJECT_CHANGE, "admin": ANY_PROJECT, "anonymous": ANONYMOUS},
        writes=True,
    ),
    "Mutation.deleteProject(id)": Row(
        "mutation($id: ID!) { deleteProject(id: $id) }",
        project_ids,
        "id",
        {"user": PROJECT_CHANGE, "admin": ANY_PROJECT, "anonymous": ANONYMOUS},
        writes=True,
    ),
    "Mutation.inviteToProject(projectId)": Row(
        'mutation($id: ID!) { inviteToProject(projectId: $id, email: "newbie@example.com", role: VIEWER)'
        " { id email } }",
        project_ids,
        "projectId",
        {"user": PROJECT_CHANGE, "admin": ANY_PROJECT, "anonymous": ANONYMOUS},
        writes=True,
    ),
    "Mutation.acceptInvitation(id)": Row(
        "mutation($id: ID!) { acceptInvitation(id: $id) { id name viewerRole } }",
        invitations_to_accept,
        "id",
        {"user": TO_MY_ADDRESS, "admin": TO_MY_ADDRESS, "anonymous": ANONYMOUS},
        writes=True,
    ),
    "Mutation.declineInvitation(id)": Row(
        "mutation($id: ID!) { declineInvitation(id: $id) }",
        invitations_to_accept,
        "id",
        {"user": TO_MY_ADDRESS, "admin": TO_MY_ADDRESS, "anonymous": ANONYMOUS},
        writes=True,
    ),
    "Mutation.revokeInvitation(id)": Row(
        "mutation($id: ID!) { revokeInvitation(id: $id) }",
        invitation_ids,
        "id",
        {"user": REVOKE, "admin": ANY_INVITATION, "anonymous": ANONYMOUS},
        writes=True,
    ),
    "Mutation.setProjectMemberRole(projectId)": Row(
        "mutation($id: ID!, $user: ID!) { setProjectMemberRole(projectId: $id, userId: $user, role: EDITOR)"
        " { role user { name } } }",
        project_ids,
        "projectId",
        {"user": PROJECT_CHANGE, "admin": ANY_PROJECT, "anonymous": ANONYMOUS},
        more_variables=on_vicky,
        writes=True,
    ),
    "Mutation.setProjectMemberRole(userId)": Row(
        "mutation($project: ID!, $id: ID!) {"
        " setProjectMemberRole(projectId: $project, userId: $id, role: EDITOR) { role user { name } } }",
        user_ids,
        "userId",
        # In the viewer's own project.
        {"user": MEMBER_OF_MINE, "admin": MEMBER_OF_MINE, "anonymous": ANONYMOUS},
        more_variables=ON_OWN_PROJECT,
        writes=True,
    ),
    "Mutation.removeProjectMember(projectId)": Row(
        "mutation($id: ID!, $user: ID!) { removeProjectMember(projectId: $id, userId: $user) }",
        project_ids,
        "projectId",
        {"user": PROJECT_CHANGE, "admin": ANY_PROJECT, "anonymous": ANONYMOUS},
        more_variables=on_vicky,
        writes=True,
    ),
    "Mutation.removeProjectMember(userId)": Row(
        "mutation($project: ID!, $id: ID!) { removeProjectMember(projectId: $project, userId: $id) }",
        user_ids,
        "userId",
        {"user": MEMBER_OF_MINE, "admin": MEMBER_OF_MINE, "anonymous": ANONYMOUS},
        more_variables=ON_OWN_PROJECT,
        writes=True,
    ),
    "Mutation.addComment(taskId)": Row(
        'mutation($id: ID!) { addComment(taskId: $id, body: "Hello") { id body } }',
        task_ids,
        "taskId",
        # Whoever sees a task comments on it (a VIEWER too).
        {"user": TASK_READ, "admin": ANY_TASK, "anonymous": ANONYMOUS},
        writes=True,
    ),
    "Mutation.updateComment(id)": Row(
        'mutation($id: ID!) { updateComment(id: $id, body: "Edited") { id body } }',
        comment_ids,
        "id",
        {"user": EDIT_COMMENT, "admin": ANY_COMMENT, "anonymous": ANONYMOUS},
        writes=True,
    ),
    "Mutation.deleteComment(id)": Row(
        "mutation($id: ID!) { deleteComment(id: $id) }",
        comment_ids,
        "id",
        {"user": DELETE_COMMENT, "admin": ANY_COMMENT, "anonymous": ANONYMOUS},
        writes=True,
    ),
    "Mutation.setUserRole(userId)": Row(
        "mutation($id: ID!) { setUserRole(userId: $id, role: ADMIN) { id role } }",
        user_ids,
        "userId",
        {"user": ADMINS_ONLY, "admin": ON_OTHERS, "anonymous": ANONYMOUS},
        writes=True,
    ),
    "Mutation.setUserActive(userId)": Row(
        "mutation($id: ID!) { setUserActive(userId: $id, active: false) { id isActive } }",
        user_ids,
        "userId",
        {"user": ADMINS_ONLY, "admin": ON_OTHERS, "anonymous": ANONYMOUS},
        writes=True,
    ),
    "Mutation.revokeSession(id)": Row(
        "mutation($id: ID!) { revokeSession(id: $id) }",
        session_ids,
        "id",
        # Admins too end only their own sessions here (deactivating an account ends all of its sessions).
        {"user": OWN_ONLY, "admin": OWN_ONLY, "anonymous": ANONYMOUS},
        writes=True,
    ),
    "Mutation.sendPasswordReset(userId)": Row(
        "mutation($id: ID!) { sendPasswordReset(userId: $id) }",
        user_ids,
        "userId",
        {"user": ADMINS_ONLY, "admin": ANY_USER, "anonymous": ANONYMOUS},
        writes=True,
    ),
    "Mutation.retryJob(id)": Row(
        "mutation($id: ID!) { retryJob(id: $id) }",
        job_ids,
        "id",
        {
            "user": ADMINS_ONLY,
            "admin": {
                **dict.fromkeys(("own", "others", "missing", "malformed:integer"), "NOT_FOUND"),
                "wrong_type": "BAD_USER_INPUT",
            },
            "anonymous": ANONYMOUS,
        },
        writes=True,
    ),
    "Mutation.markNotificationsRead(ids)": Row(
        "mutation($id: ID!) { markNotificationsRead(ids: [$id]) }",
        notification_ids,
        "ids",
        # Another's, a missing and a wrong type's entry are none of the viewer's: 0 marked, alike.
        {
            "user": dict.fromkeys(OWN_ONLY, "ok"),
            "admin": dict.fromkeys(OWN_ONLY, "ok"),
            "anonymous": ANONYMOUS,
        },
        writes=True,
    ),
    "Mutation.updateWebhook(id)": Row(
        'mutation($id: ID!) { updateWebhook(id: $id, input: {description: "changed"}) { id url } }',
        webhook_ids,
        "id",
        # A webhook is its owner's alone: an admin's rights do not reach it.
        {"user": OWN_ONLY, "admin": OWN_ONLY, "anonymous": ANONYMOUS},
        writes=True,
    ),
    "Mutation.deleteWebhook(id)": Row(
        "mutation($id: ID!) { deleteWebhook(id: $id) }",
        webhook_ids,
        "id",
        # A webhook is its owner's alone: an admin's rights do not reach it.
        {"user": OWN_ONLY, "admin": OWN_ONLY, "anonymous": ANONYMOUS},
        writes=True,
    ),
    "Mutation.rotateWebhookSecret(id)": Row(
        "mutation($id: ID!) { rotateWebhookSecret(id: $id) { secret webhook { url } } }",
        webhook_ids,
        "id",
        # A webhook is its owner's alone: an admin's rights do not reach it.
        {"user": OWN_ONLY, "admin": OWN_ONLY, "anonymous": ANONYMOUS},
        writes=True,
    ),
    "Mutation.testWebhook(id)": Row(
        "mutation($id: ID!) { testWebhook(id: $id) { status error } }",
        webhook_ids,
        "id",
        # A webhook is its owner's alone: an admin's rights do not reach it.
        {"user": OWN_ONLY, "admin": OWN_ONLY, "anonymous": ANONYMOUS},
        writes=True,
    ),
    "Mutation.retryWebhookDelivery(id)": Row(
        "mutation($id: ID!) { retryWebhookDelivery(id: $id) { status error } }",
        delivery_ids,
        "id",
        # A webhook is its owner's alone: an admin's rights do not reach it.
        {"user": OWN_ONLY, "admin": OWN_ONLY, "anonymous": ANONYMOUS},
        writes=True,
    ),
    "Subscription.taskEvents(ownerId)": Row(
        "subscription($id: ID) { taskEvents(ownerId: $id) { kind task { title owner { email } } } }",
        user_ids,
        "ownerId",
        # A socket needs a token in connection_init: without one it is closed before any subscription.
        {
            "user": SELF_ONLY,
            "admin": ANY_USER,
            "anonymous": {"others": "closed 4403", "missing": "closed 4403"},
        },
    ),
}


def id_arguments(schema: GraphQLSchema) -> set[str]:
    """``Type.field(argument.inputField...)`` for every argument, or input field within one, of type ID."""

    def paths(type_: GraphQLInputType, path: str, seen: frozenset[str]) -> Iterator[str]:
        named = get_named_type(type_)
        if named.name == "ID":
            yield path
        elif isinstance(named, GraphQLInputObjectType) and named.name not in seen:
            for name, field in named.fields.items():
                yield from paths(field.type, f"{path}.{name}", seen | {named.name})

    return {
        f"{type_.name}.{field_name}({path})"
        for type_ in schema.type_map.values()
        if isinstance(type_, GraphQLObjectType) and not type_.name.startswith("__")
        for field_name, field in type_.fields.items()
        for argument_name, argument in field.args.items()
        for path in paths(argument.type, argument_name, frozenset())
    }


def test_the_matrix_has_a_row_for_every_argument_that_takes_an_id() -> None:
    assert id_arguments(graphql_schema_of(build_schema())) == set(MATRIX)


# What a viewer must never see in a refusal: the other people's data (Alice's own are hers to see).
ALICES_OWN = {
    ALICE.email,
    ALICE.name,
    *(task.title for task in TASKS if task.owner is ALICE),
    TITLES[SHIP.id],
    COMMENT_BODIES[ALICES_COMMENT.id],
    PROJECT_NAMES[LAUNCH.id],
    "dave@example.com",  # invited to her project
}


def secrets_hidden_from(viewer: str) -> list[str]:
    me = VIEWERS.get(viewer)
    if me is ROOT:
        return []
    everything = [
        *(text for person in EVERYONE for text in (person.email, person.name)),
        *TITLES.values(),
        *COMMENT_BODIES.values(),
        *PROJECT_NAMES.values(),
        "dave@example.com",
        "frank@example.com",
    ]
    # And the IDs of a stranger's objects: a refusal names none but the one asked for.
    strangers = [
        OSCAR.id,
        PERSONAL[OSCAR].id,
        HIDEOUT.id,
        HIDEOUT_TASK.id,
        HIDEOUT_COMMENT.id,
        FRANK_INVITATION.id,
    ]
    return [text for text in everything if me is None or text not in ALICES_OWN] + strangers


@dataclass
class Answer:
    outcome: str  # "ok" or the first error's code
    body: dict[str, Any]  # the GraphQL response (for a subscription: its first message's payload)


@dataclass
class Live:
    """One taskql process, for WebSocket subscriptions; its tokens are signed with the test secret."""

    base: str
    tokens: TokenConfig

    @property
    def ws(self) -> str:
        return self.base.replace("http://", "ws://") + "/graphql"


@pytest.fixture(scope="module")
def live(database: Services, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    with servers_on(database.database_url, database.redis_url, tmp_path_factory.mktemp("security")) as bases:
        config = TokenConfig(TEST_SECRET, "taskql", "taskql", timedelta(minutes=15), timedelta(days=30))
        yield Live(bases[0], config)


@dataclass
class World:
    http: httpx.AsyncClient
    connection: asyncpg.Connection
    redis: Redis
    tokens: TokenConfig
    request: pytest.FixtureRequest

    async def rebuild(self) -> None:
        await rebuild(self.connection, self.redis)

    def token(self, viewer: str) -> str | None:
        person = VIEWERS.get(viewer)
        return access_token(self.tokens, person) if person else None

    async def ask(self, row: Row, viewer: str, global_id: Any) -> Answer:
        variables = {"id": global_id, **row.more_variables(viewer)}
        if row.document.startswith("subscription"):
            return await self.subscribe(row.document, viewer, variables)
        token = self.token(viewer)
        headers = {"authorization": f"Bearer {token}"} if token else {}
        response = await self.http.post(
            "/graphql", json={"query": row.document, "variables": variables}, headers=headers
        )
        assert response.status_code < 500, response.text
        body = response.json()
        return Answer(body["errors"][0]["extensions"]["code"] if body.get("errors") else "ok", body)

    async def subscribe(self, document: str, viewer: str, variables: dict[str, Any]) -> Answer:
        live: Live = self.request.getfixturevalue("live")
        person = VIEWERS.get(viewer)
        payload = {"authorization": f"Bearer {access_token(live.tokens, person)}"} if person else {}
        try:
            subscriber = await Subscriber.open(live.ws, payload)
        except Closed as closed:  # the socket itself was refused
            return Answer(f"closed {closed.code}", {"closed": closed.code, "reason": closed.reason})
        try:
            await subscriber.subscribe(variables, query=document)
            try:
                message = await subscriber.receive(timeout=0.5)
            except TimeoutError:  # subscribed: the owner's next write must arrive
                owner = next((p for p in EVERYONE if p.id == variables["id"]), None)
                assert owner is not None, variables
                await _create_task_on(live, owner, "written while subscribed")
                message = await subscriber.receive()
        finally:
            await subscriber.close()
        assert message["type"] == "next", message
        body: dict[str, Any] = message["payload"]
        return Answer(body["errors"][0]["extensions"]["code"] if body.get("errors") else "ok", body)


async def _create_task_on(live: Live, owner: Person, title: str) -> None:
    async with httpx.AsyncClient(base_url=live.base) as http:
        response = await http.post(
            "/graphql",
            json={
                "query": "mutation($t: String!) { createTask(input: {title: $t}) { id } }",
                "variables": {"t": title},
            },
            headers={"authorization": f"Bearer {access_token(live.tokens, owner)}"},
        )
    assert "errors" not in response.json(), response.json()


@pytest.fixture
async def world(
    http: httpx.AsyncClient, database: Services, settings: Settings, request: pytest.FixtureRequest
) -> AsyncIterator[World]:
    connection = await asyncpg.connect(database.dsn)
    redis = Redis.from_url(database.redis_url)
    world = World(http, connection, redis, TokenConfig.of(settings), request)
    await world.rebuild()
    try:
        yield world
    finally:
        await redis.aclose()
        await connection.close()


def kinds_for(row: Row, viewer: str) -> dict[str, Any]:
    """The IDs ``viewer`` tries on ``row``, by kind (anonymous: someone's, and a missing one)."""
    if viewer == "anonymous":
        return {
            kind: global_id for kind, global_id in row.ids("user").items() if kind in ("others", "missing")
        }
    return row.ids(viewer)


PATHS_AND_VIEWERS = [
    pytest.param(path, viewer, id=f"{path}-{viewer}")
    for path in MATRIX
    for viewer in ("user", "admin", "anonymous")
]


async def misfits(world: World, row: Row, viewer: str, kind: str, global_id: Any) -> list[str]:
    """What is wrong with the answer to ``row`` for ``viewer`` with this ID, from a freshly built world."""
    await world.rebuild()
    expected = row.outcome(viewer, kind)
    before = await snapshot(world.connection)
    answer = await world.ask(row, viewer, global_id)
    if answer.outcome != expected:
        return [f"{kind}: {answer.outcome} where the matrix says {expected}: {answer.body}"]
    if expected == "ok" or expected.startswith("closed"):
        return []
    found = []
    data = answer.body.get("data")
    if len(answer.body["errors"]) != 1 or not (data is None or all(value is None for value in data.values())):
        found.append(f"{kind}: a refusal with data or several errors: {answer.body}")
    text = json.dumps(answer.body)
    if leaked := [secret for secret in secrets_hidden_from(viewer) if secret in text and secret != global_id]:
        found.append(f"{kind}: a refusal shows {leaked}: {answer.body}")
    if row.writes and await snapshot(world.connection) != before:
        found.append(f"{kind}: a refusal wrote to the database")
    field = answer.body["errors"][0]["extensions"].get("field")
    if kind.startswith("malformed:") and expected == "BAD_USER_INPUT" and field != row.field:
        found.append(f"{kind}: BAD_USER_INPUT names {field!r}, not {row.field!r}")
    return found


@pytest.mark.parametrize(("path", "viewer"), PATHS_AND_VIEWERS)
async def test_every_kind_of_id_gets_the_matrix_outcome_and_a_refusal_leaks_and_writes_nothing(
    world: World, path: str, viewer: str
) -> None:
    row = MATRIX[path]
    found = [
        misfit
        for kind, global_id in kinds_for(row, viewer).items()
        for misfit in await misfits(world, row, viewer, kind, global_id)
    ]
    assert not found, "\n".join(found)


def masked(answer: Answer, global_id: Any) -> Any:
    body = {name: value for name, value in answer.body.items() if name != "extensions"}  # the budget
    return json.loads(json.dumps(body).replace(str(global_id), "<id>"))


def twins(row: Row, viewer: str) -> list[tuple[str, str]]:
    """Each kind of ID naming someone else's object (``others``, ``others_...``) that the matrix answers as
    a missing one of the same type, with that kind: they must be answered exactly alike. Also when both are
    "ok" for a user: a filter by a stranger's ID finds what a missing one finds (an admin, though, sees
    others' objects)."""
    kinds = kinds_for(row, viewer)
    found = []
    for kind in kinds:
        if not kind.startswith("others"):
            continue
        missing = "missing" + kind.removeprefix("others")
        missing = missing if missing in kinds else "missing"
        theirs = row.outcome(viewer, kind)
        if theirs == row.outcome(viewer, missing) and (theirs != "ok" or viewer != "admin"):
            found.append((kind, missing))
    return found


INDISTINGUISHABLE = [
    pytest.param(path, viewer, id=f"{path}-{viewer}")
    for path, row in MATRIX.items()
    for viewer in ("user", "admin", "anonymous")
    if twins(row, viewer)
]


@pytest.mark.parametrize(("path", "viewer"), INDISTINGUISHABLE)
async def test_someone_elses_object_is_answered_exactly_like_a_missing_one(
    world: World, path: str, viewer: str
) -> None:
    row = MATRIX[path]
    ids = kinds_for(row, viewer)
    differences = []
    for kind, missing_kind in twins(row, viewer):
        theirs = await world.ask(row, viewer, ids[kind])
        missing = await world.ask(row, viewer, ids[missing_kind])
        if masked(theirs, ids[kind]) != masked(missing, ids[missing_kind]):
            differences.append(f"{kind}: {theirs.body}\n{missing_kind}: {missing.body}")
    if (
        row.typed
        and viewer != "anonymous"
        and row.outcome(viewer, "wrong_type") == row.outcome(viewer, "missing")
    ):
        # An ID of another type names nothing of this type: the same answer again.
        wrong = await world.ask(row, viewer, ids["wrong_type"])
        missing = await world.ask(row, viewer, ids["missing"])
        if masked(wrong, ids["wrong_type"]) != masked(missing, ids["missing"]):
            differences.append(f"wrong_type: {wrong.body}\nmissing: {missing.body}")
    assert not differences, "\n".join(differences)


async def test_an_admin_subscribed_to_one_owner_receives_that_owners_events_only(
    world: World, live: Live
) -> None:
    payload = {"authorization": f"Bearer {access_token(live.tokens, ROOT)}"}
    subscriber = await Subscriber.open(live.ws, payload)
    try:
        await subscriber.subscribe(
            {"id": ALICE.id}, query=MATRIX["Subscription.taskEvents(ownerId)"].document
        )
        await asyncio.sleep(0.3)
        await _create_task_on(live, BOB, "bob's, not asked for")
        await _create_task_on(live, ALICE, "alice's")
        event = await subscriber.event()
        assert (event["kind"], event["task"]["title"]) == ("CREATED", "alice's")
        assert await subscriber.silent_for(0.3)
    finally:
        await subscriber.close()


NOTIFICATION_EVENTS = "subscription($after: String) { notificationEvents(after: $after) { title cursor } }"


async def _notify(database: Services, person: Person, title: str) -> None:
    """An entry in ``person``'s inbox, committed, as the worker makes one."""
    engine = create_async_engine(async_url(database.database_url))
    try:
        async with AsyncSession(engine) as db, db.begin():
            await notify(
                db, person.key, NotificationKind.TASK_DUE_SOON, title=title, body="", dedupe_key=title
            )
    finally:
        await engine.dispose()


@pytest.mark.parametrize("viewer", ["user", "admin"])
async def test_a_subscriber_receives_their_own_notifications_only_an_admin_too(
    world: World, live: Live, database: Services, viewer: str
) -> None:
    me, other = VIEWERS[viewer], OTHERS[viewer]
    subscriber = await Subscriber.open(live.ws, {"authorization": f"Bearer {access_token(live.tokens, me)}"})
    try:
        await subscriber.subscribe({"after": encode_inbox_cursor(0)}, query=NOTIFICATION_EVENTS)
        first = await subscriber.receive()
        assert first["payload"]["data"]["notificationEvents"]["title"] == f"for {me.name}", first
        await _notify(database, other, f"{other.name}'s, not {me.name}'s")
        await _notify(database, me, "mine")
        mine = await subscriber.receive()  # another's would have come first
        assert mine["payload"]["data"]["notificationEvents"] == {
            "title": "mine",
            "cursor": encode_inbox_cursor(2),
        }
        assert await subscriber.silent_for(0.3)
    finally:
        await subscriber.close()


async def test_an_anonymous_socket_gets_no_inbox(live: Live) -> None:
    assert (await refused(live.ws, None)).code == 4403


async def test_a_deactivated_accounts_id_is_no_way_in(world: World) -> None:
    """Carol is deactivated: her ID works as any other user's for an admin, and tells a user nothing."""
    row = MATRIX["Query.node(id)"]
    assert (await world.ask(row, "admin", CAROL.id)).outcome == "ok"
    theirs, missing = await world.ask(row, "user", CAROL.id), await world.ask(row, "user", MISSING_USER)
    assert masked(theirs, CAROL.id) == masked(missing, MISSING_USER)


# The response cache: the same request bytes from another viewer never get the first viewer's answer.
MY_TASKS = "query Mine { tasks(first: 50) { edges { node { title } } } }"


APQ = {"persistedQuery": {"version": 1, "sha256Hash": hashlib.sha256(MY_TASKS.encode()).hexdigest()}}


def request_forms() -> dict[str, Callable[[httpx.AsyncClient, dict[str, str]], Awaitable[httpx.Response]]]:
    return {
        "POST": lambda http, headers: http.post("/graphql", json={"query": MY_TASKS}, headers=headers),
        "GET": lambda http, headers: http.get("/graphql", params={"query": MY_TASKS}, headers=headers),
        "APQ over GET": lambda http, headers: http.get(
            "/graphql", params={"extensions": json.dumps(APQ)}, headers=headers
        ),
    }


@pytest.mark.parametrize("form", list(request_forms()))
async def test_a_cached_answer_is_never_served_to_another_viewer(world: World, form: str) -> None:
    send = request_forms()[form]
    alice = {"authorization": f"Bearer {world.token('user')}"}
    if form == "APQ over GET":  # registered once, with its query, as Apollo's link does
        await world.http.post("/graphql", json={"query": MY_TASKS, "extensions": APQ}, headers=alice)
    for _ in range(2):  # the second is a hit
        first = await send(world.http, alice)
    assert first.headers["x-cache"] == "HIT"
    assert "Alice's secret plan" in first.text
    bob = {"authorization": f"Bearer {access_token(world.tokens, BOB)}"}
    etag = first.headers.get("etag")
    for headers in (bob, {**bob, "if-none-match": etag} if etag else bob):
        theirs = await send(world.http, headers)
        assert theirs.status_code == 200
        # Bob's own, and those of the project he is a VIEWER of; none of Alice's own.
        titles = {edge["node"]["title"] for edge in theirs.json()["data"]["tasks"]["edges"]}
        assert titles == {"Bob's errand", TITLES[SHIP.id], TITLES[TEAM_TASK.id]}
    for headers in ({}, {"authorization": "Bearer " + (world.token("user") or "")[:-3] + "xyz"}):
        stranger = await send(world.http, {**headers, **({"if-none-match": etag} if etag else {})})
        assert stranger.status_code == 200
        assert stranger.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        assert "Alice" not in stranger.text
    admin = await send(world.http, {"authorization": f"Bearer {world.token('admin')}"})
    assert len(admin.json()["data"]["tasks"]["edges"]) == len(TITLES)
