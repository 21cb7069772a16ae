"""The fixed world (``tests.fixed_world``) with a whole team around its project, and people and projects
around it, written straight into PostgreSQL and rebuilt in a few milliseconds: for the authorization and
security matrices, which run every case against a world of their own.

In the fixed world, Alice is the OWNER of the project "Launch" and Bob its VIEWER, assigned Alice's task
"Ship the launch" and the author of its one comment; Root is an admin and no member; an invitation waits for
dave@example.com, an address with no account. Added here:

- Launch gets Eddie as its EDITOR and Vicky as a second VIEWER. Eddie's task "Draft the plan" in it is
  assigned to Bob, with a comment of Bob's, its history, and Bob's TASK_ASSIGNED notification of it;
  Alice comments on "Ship the launch"; an invitation of Launch waits for Oscar.
- Oscar shares no project with anyone: his own project "Hideout" has a task, his comment on it and an
  invitation to frank@example.com (no account).
- Sam's project "Side quest": Alice and Vicky are its VIEWERs; a task and comment of Sam's; an invitation
  to Root's address. (Sam is no persona of the authorization matrix: owning a project Alice is in, he sees
  her address.)
- Root's project "Lab": Eddie its EDITOR, Vicky a VIEWER; a task and comment of Root's; an invitation to
  Alice's address.
- Eddie, Vicky, Oscar and Sam have a personal task, a session, a notification, a webhook with a failed
  delivery (as every person of the fixed world); every address is verified (invitations can be accepted).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

import asyncpg
from redis.asyncio import Redis

from core.ids import encode_id
from tests import fixed_world
from tests.fixed_world import (
    ALICE,
    BASE,
    BOB,
    COMMENT_ID,
    INVITATION_ID,
    PEOPLE,
    PROJECT,
    PROJECT_ID,
    PROJECT_TASK,
    ROOT,
    TASKS,
    Person,
    password_hash,
)


def _near(base: uuid.UUID, offset: int) -> uuid.UUID:
    return uuid.UUID(int=base.int + offset)


EDDIE = Person(uuid.UUID("edd1e000-0000-4000-8000-000000000000"), "eddie@example.com", "Eddie")
VICKY = Person(uuid.UUID("f1cc1000-0000-4000-8000-000000000000"), "vicky@example.com", "Vicky")
OSCAR = Person(uuid.UUID("05ca4000-0000-4000-8000-000000000000"), "oscar@example.com", "Oscar")
SAM = Person(uuid.UUID("5a400000-0000-4000-8000-000000000000"), "sam@example.com", "Sam")
EXTRA_PEOPLE = (EDDIE, VICKY, OSCAR, SAM)
EVERYONE = (*PEOPLE, *EXTRA_PEOPLE)


@dataclass(frozen=True)
class Thing:
    """A row of the world with a global ID."""

    key: uuid.UUID
    type_name: str

    @property
    def id(self) -> str:
        return encode_id(self.type_name, self.key)


def _task(person: Person) -> Thing:
    return Thing(_near(person.key, 10), "Task")


# Personal tasks of the added people (the fixed world's are in ``fixed_world.TASKS``).
PERSONAL_TITLES = {
    EDDIE: "Eddie's chores",
    VICKY: "Vicky's reading",
    OSCAR: "Oscar's diary",
    SAM: "Sam's list",
}
PERSONAL = {person: _task(person) for person in PERSONAL_TITLES}

# Launch (the fixed world's project).
LAUNCH = Thing(PROJECT, "Project")
LAUNCH_INVITATION = Thing(fixed_world.INVITATION, "ProjectInvitation")  # to dave@example.com
BOBS_COMMENT = Thing(fixed_world.COMMENT, "Comment")  # on "Ship the launch"
SHIP = Thing(PROJECT_TASK.key, "Task")  # Alice's, assigned to Bob
TEAM_TASK = Thing(_near(PROJECT, 0x1A), "Task")  # Eddie's "Draft the plan", assigned to Bob
TEAM_COMMENT = Thing(_near(PROJECT, 0x1C), "Comment")  # Bob's, on TEAM_TASK
ALICES_COMMENT = Thing(_near(PROJECT, 0x2C), "Comment")  # on "Ship the launch"
OSCAR_INVITATION = Thing(_near(PROJECT, 0x1E), "ProjectInvitation")  # Launch's, to Oscar
BOB_ASSIGNED = Thing(_near(BOB.key, 0x20), "Notification")  # Bob's, about TEAM_TASK

SIDE = Thing(uuid.UUID("51de0000-0000-4000-8000-000000000000"), "Project")
SIDE_TASK = Thing(_near(SIDE.key, 0xA), "Task")
SIDE_COMMENT = Thing(_near(SIDE.key, 0xC), "Comment")
ROOT_INVITATION = Thing(_near(SIDE.key, 0xE), "ProjectInvitation")  # Side quest's, to Root

LAB = Thing(uuid.UUID("1ab00000-0000-4000-8000-000000000000"), "Project")
LAB_TASK = Thing(_near(LAB.key, 0xA), "Task")
LAB_COMMENT = Thing(_near(LAB.key, 0xC), "Comment")
ALICE_INVITATION = Thing(_near(LAB.key, 0xE), "ProjectInvitation")  # Lab's, to Alice

HIDEOUT = Thing(uuid.UUID("41de0000-0000-4000-8000-000000000000"), "Project")
HIDEOUT_TASK = Thing(_near(HIDEOUT.key, 0xA), "Task")
HIDEOUT_COMMENT = Thing(_near(HIDEOUT.key, 0xC), "Comment")
FRANK_INVITATION = Thing(_near(HIDEOUT.key, 0xE), "ProjectInvitation")  # Hideout's, to frank@

MISSING_PROJECT = encode_id("Project", uuid.UUID("dead0000-0000-4000-8000-000000000002"))
MISSING_COMMENT = encode_id("Comment", uuid.UUID("dead0000-0000-4000-8000-000000000003"))
MISSING_INVITATION = encode_id("ProjectInvitation", uuid.UUID("dead0000-0000-4000-8000-000000000004"))

assert LAUNCH.id == PROJECT_ID
assert BOBS_COMMENT.id == COMMENT_ID
assert LAUNCH_INVITATION.id == INVITATION_ID

THINGS = (
    LAUNCH, LAUNCH_INVITATION, BOBS_COMMENT, SHIP, TEAM_TASK, TEAM_COMMENT, ALICES_COMMENT, OSCAR_INVITATION,
    BOB_ASSIGNED, SIDE, SIDE_TASK, SIDE_COMMENT, ROOT_INVITATION, LAB, LAB_TASK, LAB_COMMENT,
    ALICE_INVITATION, HIDEOUT, HIDEOUT_TASK, HIDEOUT_COMMENT, FRANK_INVITATION, *PERSONAL.values(),
)  # fmt: skip

# Every task's title, by its ID.
TITLES = {
    **{task.id: task.title for task in TASKS},
    SHIP.id: PROJECT_TASK.title,
    **{PERSONAL[person].id: title for person, title in PERSONAL_TITLES.items()},
    TEAM_TASK.id: "Draft the plan",
    SIDE_TASK.id: "Side errand",
    LAB_TASK.id: "Lab experiment",
    HIDEOUT_TASK.id: "Oscar's hidden plan",
}
PROJECT_NAMES = {LAUNCH.id: "Launch", SIDE.id: "Side quest", LAB.id: "Lab", HIDEOUT.id: "Hideout"}
COMMENT_BODIES = {
    BOBS_COMMENT.id: "On it.",
    TEAM_COMMENT.id: "Bob's note on the plan",
    ALICES_COMMENT.id: "Alice's reply",
    SIDE_COMMENT.id: "Sam's aside",
    LAB_COMMENT.id: "Root's lab note",
    HIDEOUT_COMMENT.id: "Oscar's whisper",
}
# The global ID of every object of the world.
GLOBAL_IDS = {
    *TITLES,
    *(thing.id for thing in THINGS),
    *(global_id for p in EVERYONE for global_id in (p.id, p.notification_id, p.webhook_id, p.delivery_id)),
    *(encode_id("Session", p.session) for p in EVERYONE),
}


async def rebuild(connection: asyncpg.Connection, redis: Redis) -> None:
    """Empty the tables and taskql's Redis keys, then write the fixed world and what this module adds."""
    await fixed_world.rebuild(connection, redis)
    await _people(connection)
    await _projects(connection)
    await connection.execute("UPDATE users SET email_verified_at = $1", BASE)


async def _people(connection: asyncpg.Connection) -> None:
    """The rows every person of the fixed world has, for the added people."""
    await connection.executemany(
        "INSERT INTO users (id, email, name, password_hash, role, is_active, created_at, updated_at)"
        " VALUES ($1, $2, $3, $4, 'USER', true, $5, $5)",
        [
            (p.key, p.email, p.name, password_hash(), BASE + timedelta(minutes=10 + n))
            for n, p in enumerate(EXTRA_PEOPLE)
        ],
    )
    await connection.executemany(
        "INSERT INTO auth_sessions (id, user_id, created_at) VALUES ($1, $2, $3)",
        [(p.session, p.key, BASE) for p in EXTRA_PEOPLE],
    )
    await connection.executemany(
        "INSERT INTO tasks (id, owner_id, title, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)",
        [
            (PERSONAL[p].key, p.key, PERSONAL_TITLES[p], BASE + timedelta(hours=20 + n))
            for n, p in enumerate(EXTRA_PEOPLE)
        ],
    )
    await connection.executemany(
        "INSERT INTO notifications (id, user_id, kind, title, body, dedupe_key, seq)"
        " VALUES ($1, $2, 'TASK_DUE_SOON', $3, 'soon', $3, 1)",
        [(p.notification, p.key, f"for {p.name}") for p in EXTRA_PEOPLE],
    )
    await connection.executemany(
        "INSERT INTO notification_settings (user_id, last_notification_seq) VALUES ($1, 1)",
        [(p.key,) for p in EXTRA_PEOPLE],
    )
    await connection.executemany(
        "INSERT INTO webhooks (id, owner_id, url, events, description, enabled, secret_salt, created_at,"
        " updated_at) VALUES ($1, $2, $3, '{TASK_CREATED}', $4, true, 'salt', $5, $5)",
        [
            (p.webhook, p.key, f"http://127.0.0.1:9/hook-of-{p.name.lower()}", f"for {p.name}", BASE)
            for p in EXTRA_PEOPLE
        ],
    )
    await connection.executemany(
        "INSERT INTO webhook_deliveries (id, webhook_id, message_id, event_type, payload, status, attempt,"
        " created_at) VALUES ($1, $2, $1, 'TASK_CREATED', '{}', 'failed', 1, $3)",
        [(_near(p.key, 4), p.webhook, BASE) for p in EXTRA_PEOPLE],
    )


async def _projects(connection: asyncpg.Connection) -> None:
    await connection.executemany(
        "INSERT INTO projects (id, name, description, created_at, updated_at) VALUES ($1, $2, NULL, $3, $3)",
        [
            (project.key, PROJECT_NAMES[project.id], BASE + timedelta(days=n + 1))
            for n, project in enumerate((SIDE, LAB, HIDEOUT))
        ],
    )
    members = [
        (LAUNCH, EDDIE, "EDITOR"), (LAUNCH, VICKY, "VIEWER"),
        (SIDE, SAM, "OWNER"), (SIDE, ALICE, "VIEWER"), (SIDE, VICKY, "VIEWER"),
        (LAB, ROOT, "OWNER"), (LAB, EDDIE, "EDITOR"), (LAB, VICKY, "VIEWER"),
        (HIDEOUT, OSCAR, "OWNER"),
    ]  # fmt: skip
    await connection.executemany(
        "INSERT INTO project_members (project_id, user_id, role, added_at) VALUES ($1, $2, $3, $4)",
        [
            (project.key, person.key, role, BASE + timedelta(minutes=5 + n))
            for n, (project, person, role) in enumerate(members)
        ],
    )
    tasks = [
        (TEAM_TASK, EDDIE, LAUNCH, BOB), (SIDE_TASK, SAM, SIDE, None), (LAB_TASK, ROOT, LAB, None),
        (HIDEOUT_TASK, OSCAR, HIDEOUT, OSCAR),
    ]  # fmt: skip
    await connection.executemany(
        "INSERT INTO tasks (id, owner_id, title, project_id, assignee_id, created_at, updated_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $6)",
        [
            (task.key, owner.key, TITLES[task.id], project.key, assignee.key if assignee else None,
             BASE + timedelta(hours=30 + n))
            for n, (task, owner, project, assignee) in enumerate(tasks)
        ],
    )  # fmt: skip
    await connection.executemany(
        "INSERT INTO task_activity (id, task_id, actor_id, kind, changes, at) VALUES ($1, $2, $3, 'CREATED',"
        " $4, $5)",
        [
            (_near(task.key, 0x100), task.key, owner.key,
             f'[{{"field": "title", "from": null, "to": "{TITLES[task.id]}"}}]', BASE + timedelta(hours=40))
            for task, owner, _, _ in tasks
        ],
    )  # fmt: skip
    comments = [
        (TEAM_COMMENT, TEAM_TASK, BOB), (ALICES_COMMENT, SHIP, ALICE), (SIDE_COMMENT, SIDE_TASK, SAM),
        (LAB_COMMENT, LAB_TASK, ROOT), (HIDEOUT_COMMENT, HIDEOUT_TASK, OSCAR),
    ]  # fmt: skip
    await connection.executemany(
        "INSERT INTO comments (id, task_id, author_id, body, created_at, updated_at)"
        " VALUES ($1, $2, $3, $4, $5, $5)",
        [
            (comment.key, task.key, author.key, COMMENT_BODIES[comment.id], BASE + timedelta(hours=50 + n))
            for n, (comment, task, author) in enumerate(comments)
        ],
    )
    invitations = [
        (OSCAR_INVITATION, LAUNCH, OSCAR.email, "VIEWER", ALICE),
        (ROOT_INVITATION, SIDE, ROOT.email, "VIEWER", SAM),
        (ALICE_INVITATION, LAB, ALICE.email, "EDITOR", ROOT),
        (FRANK_INVITATION, HIDEOUT, "frank@example.com", "EDITOR", OSCAR),
    ]
    await connection.executemany(
        "INSERT INTO project_invitations (id, project_id, email, role, invited_by_id, created_at, expires_at)"
        " VALUES ($1, $2, $3, $4, $5, now(), now() + interval '7 days')",
        [
            (invitation.key, project.key, email, role, inviter.key)
            for invitation, project, email, role, inviter in invitations
        ],
    )
    # Bob was told of his assignment to Eddie's task (his second notification).
    await connection.execute(
        "INSERT INTO notifications (id, user_id, kind, title, body, dedupe_key, seq, task_id)"
        " VALUES ($1, $2, 'TASK_ASSIGNED', 'Assigned to you: Draft the plan', 'You were assigned.', $3, 2,"
        " $4)",
        BOB_ASSIGNED.key,
        BOB.key,
        f"assigned:{TEAM_TASK.key}",
        TEAM_TASK.key,
    )
    await connection.execute(
        "UPDATE notification_settings SET last_notification_seq = 2 WHERE user_id = $1", BOB.key
    )
