from __future__ import annotations

import strawberry

from core.errors import BadUserInput
from models import Role
from resolvers import tasks, users
from schema.directives.auth import Auth
from schema.info import Info
from schema.types.auth_payload import AuthPayload
from schema.types.inputs import (
    CreateTaskInput,
    LoginInput,
    RegisterInput,
    UpdateTaskInput,
    given,
    is_given,
    typed_key,
    user_key,
)
from schema.types.task import Task
from schema.types.user import User


@strawberry.type(description="Writes. Each one is a single transaction: it happens whole or not at all.")
class Mutation:
    @strawberry.mutation(description="Create an account and log in.")
    async def register(self, info: Info, input: RegisterInput) -> AuthPayload:
        return AuthPayload.from_pair(await users.register(info.context, values=given(input)))

    @strawberry.mutation(
        description="Log in. Wrong email or password: UNAUTHENTICATED, same message either way."
    )
    async def login(self, info: Info, input: LoginInput) -> AuthPayload:
        return AuthPayload.from_pair(await users.login(info.context, values=given(input)))

    @strawberry.mutation(
        description="Exchange a refresh token for new tokens. Each works once: reuse ends the session."
    )
    async def refresh_token(self, info: Info, token: str) -> AuthPayload:
        return AuthPayload.from_pair(await users.refresh(info.context, token=token))

    @strawberry.mutation(
        description="End the session of a still-valid `refreshToken`, or of the access token; with "
        "`everywhere: true` (which needs the account's access token), every session of the user. Their "
        "access tokens stop working at once."
    )
    async def logout(
        self, info: Info, refresh_token: str | None = None, everywhere: bool | None = False
    ) -> bool:
        return await users.logout(info.context, refresh_token=refresh_token, everywhere=bool(everywhere))

    @strawberry.mutation(description="Create a task owned by the viewer.", directives=[Auth()])
    async def create_task(self, info: Info, input: CreateTaskInput) -> Task:
        return Task.from_model(await tasks.create_task(info.context, values=given(input)))

    @strawberry.mutation(description="Change a task. Another user's task is NOT_FOUND.", directives=[Auth()])
    async def update_task(self, info: Info, id: strawberry.ID, input: UpdateTaskInput) -> Task:
        if input.owner_id is None:
            raise BadUserInput("input.ownerId: cannot be null.", field="input.ownerId")
        owner = user_key(input.owner_id, field="input.ownerId") if is_given(input.owner_id) else None
        task = await tasks.update_task(
            info.context,
            task_id=typed_key(id, "Task"),
            values=given(input, skip=("owner_id",)),
            new_owner_id=owner,
        )
        return Task.from_model(task)

    @strawberry.mutation(description="Delete a task; returns its ID.", directives=[Auth()])
    async def delete_task(self, info: Info, id: strawberry.ID) -> strawberry.ID:
        await tasks.delete_task(info.context, task_id=typed_key(id, "Task"))
        return id

    @strawberry.mutation(
        description="Change a user's role (admins only).", directives=[Auth(requires=Role.ADMIN)]
    )
    async def set_user_role(self, info: Info, user_id: strawberry.ID, role: Role) -> User:
        key = user_key(user_id, field="userId")
        return User.from_model(await users.set_user_role(info.context, user_id=key, role=role))

    @strawberry.mutation(
        description="Deactivate (or reactivate) a user (admins only): their tokens stop working at once.",
        directives=[Auth(requires=Role.ADMIN)],
    )
    async def set_user_active(self, info: Info, user_id: strawberry.ID, active: bool) -> User:
        key = user_key(user_id, field="userId")
        return User.from_model(await users.set_user_active(info.context, user_id=key, active=active))
