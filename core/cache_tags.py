"""The names of what a cached response can depend on, and what a write changes.

A response cached for a viewer depends on a few tags (see ``viewer_tags``); every write names the tags it
changed, and their versions are bumped after commit, before the write is acknowledged. The mapping rests on
one invariant of the API: a USER sees their own account and tasks, and what their projects hold (tasks,
members, comments, history); an ADMIN sees all. So a write bumps ``tasks_of`` of everyone who may see what
it changed (a project's members read in the write's transaction, the project locked against membership
changes), and a membership change bumps ``tasks_of`` of the members it concerns.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass

EPOCH = "epoch"  # everything: bumped by migrations, seeding and `taskql cache flush`
ALL_TASKS = "tasks"  # any task of anyone (admins' lists and global statistics)
ALL_USERS = "users"  # any account (admins' user lists, owners of tasks)


def user(user_id: uuid.UUID) -> str:
    """The account: name, email, role, activation (and with them every session's validity)."""
    return f"user:{user_id}"


def tasks_of(owner_id: uuid.UUID) -> str:
    """Everything of tasks and projects one user sees (their lists, their statistics, their projects)."""
    return f"tasks-of:{owner_id}"


def session(session_id: uuid.UUID) -> str:
    """One login session: bumped when it ends."""
    return f"session:{session_id}"


def viewer_tags(user_id: uuid.UUID, *, is_admin: bool) -> tuple[str, ...]:
    """What a response computed for this viewer can depend on."""
    if is_admin:
        return (EPOCH, user(user_id), ALL_USERS, ALL_TASKS)
    return (EPOCH, user(user_id), tasks_of(user_id))


def task_changed(owner_id: uuid.UUID) -> tuple[str, ...]:
    return (tasks_of(owner_id), ALL_TASKS)


def seen_by(users: Iterable[uuid.UUID]) -> tuple[str, ...]:
    """A task or project changed: what everyone who sees it (and every admin) has cached of it."""
    return (*(tasks_of(user) for user in sorted(set(users))), ALL_TASKS)


def user_changed(user_id: uuid.UUID) -> tuple[str, ...]:
    """The account's rights or sessions changed: its sockets close too (``user:`` is a control tag)."""
    return (user(user_id), ALL_USERS)


def shown_changed(user_id: uuid.UUID) -> tuple[str, ...]:
    """How the user is shown changed (name, address, their inbox), not their rights: every cached answer of
    theirs (a user's all depend on their tasks' tag, an admin's on every user's) and every admin's, without
    the control tag that would close their sockets."""
    return (tasks_of(user_id), ALL_USERS)


@dataclass(frozen=True, slots=True)
class Policy:
    """How long a query's response may be kept (0: not at all), and whether shared caches may keep it."""

    max_age: int
    public: bool

    @property
    def cacheable(self) -> bool:
        return self.max_age > 0
