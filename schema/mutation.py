from __future__ import annotations

import strawberry

from core.errors import BadUserInput
from models import ProjectRole, Role
from resolvers import accounts, comments, jobs, notifications, projects, tasks, users, webhooks
from schema.directives.auth import Auth
from schema.info import Info
from schema.types.auth_payload import AuthPayload
from schema.types.comment import Comment
from schema.types.inputs import (
    CreateTaskInput,
    LoginInput,
    RegisterInput,
    UpdateProfileInput,
    UpdateTaskInput,
    given,
    is_given,
    placement,
    typed_key,
    user_key,
)
from schema.types.notification import NotificationSettings, NotificationSettingsInput
from schema.types.project import (
    CreateProjectInput,
    Project,
    ProjectInvitation,
    ProjectMember,
    UpdateProjectInput,
)
from schema.types.task import Task
from schema.types.user import User
from schema.types.webhook import (
    CreateWebhookInput,
    CreateWebhookPayload,
    UpdateWebhookInput,
    Webhook,
    WebhookDelivery,
)

PLACEMENT = ("project_id", "assignee_id")


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

    @strawberry.mutation(
        description="Create a task owned by the viewer: personal, or in a project (EDITOR or OWNER).",
        directives=[Auth()],
    )
    async def create_task(self, info: Info, input: CreateTaskInput) -> Task:
        values = given(input, skip=PLACEMENT)
        return Task.from_model(
            await tasks.create_task(info.context, values=values, placement=placement(input))
        )

    @strawberry.mutation(
        description="Change a task (its owner, or an EDITOR or OWNER of its project). One the viewer may not "
        "see is NOT_FOUND; a VIEWER's attempt FORBIDDEN.",
        directives=[Auth()],
    )
    async def update_task(self, info: Info, id: strawberry.ID, input: UpdateTaskInput) -> Task:
        if input.owner_id is None:
            raise BadUserInput("input.ownerId: cannot be null.", field="input.ownerId")
        owner = user_key(input.owner_id, field="input.ownerId") if is_given(input.owner_id) else None
        task = await tasks.update_task(
            info.context,
            task_id=typed_key(id, "Task"),
            values=given(input, skip=("owner_id", *PLACEMENT)),
            new_owner_id=owner,
            placement=placement(input),
        )
        return Task.from_model(task)

    @strawberry.mutation(description="Delete a task; returns its ID.", directives=[Auth()])
    async def delete_task(self, info: Info, id: strawberry.ID) -> strawberry.ID:
        await tasks.delete_task(info.context, task_id=typed_key(id, "Task"))
        return id

    @strawberry.mutation(description="Create a project; the viewer is its OWNER.", directives=[Auth()])
    async def create_project(self, info: Info, input: CreateProjectInput) -> Project:
        return Project.from_record(await projects.create_project(info.context, values=given(input)))

    @strawberry.mutation(
        description="Change a project's name or description (its OWNER).", directives=[Auth()]
    )
    async def update_project(self, info: Info, id: strawberry.ID, input: UpdateProjectInput) -> Project:
        key = typed_key(id, "Project")
        return Project.from_record(
            await projects.update_project(info.context, project_id=key, values=given(input))
        )

    @strawberry.mutation(
        description="Delete a project and its tasks (its OWNER); returns its ID.", directives=[Auth()]
    )
    async def delete_project(self, info: Info, id: strawberry.ID) -> strawberry.ID:
        await projects.delete_project(info.context, project_id=typed_key(id, "Project"))
        return id

    @strawberry.mutation(
        description="Invite an address to a project as EDITOR or VIEWER (its OWNER). It expires after 7 "
        "days. The answer is the same whether or not the address has an account: one is told in the app "
        "and by mail, anyone else by mail, and the invitation waits for the account they register.",
        directives=[Auth()],
    )
    async def invite_to_project(
        self, info: Info, project_id: strawberry.ID, email: str, role: ProjectRole
    ) -> ProjectInvitation:
        key = typed_key(project_id, "Project", field="projectId")
        invitation = await projects.invite(info.context, project_id=key, email=email, role=role)
        return ProjectInvitation.from_record(invitation)

    @strawberry.mutation(
        description="Join a project by an invitation to the viewer's verified address (EMAIL_NOT_VERIFIED "
        "until it is verified).",
        directives=[Auth()],
    )
    async def accept_invitation(self, info: Info, id: strawberry.ID) -> Project:
        key = typed_key(id, "ProjectInvitation")
        return Project.from_record(await projects.accept_invitation(info.context, invitation_id=key))

    @strawberry.mutation(description="Decline an invitation to the viewer's address.", directives=[Auth()])
    async def decline_invitation(self, info: Info, id: strawberry.ID) -> bool:
        return await projects.decline_invitation(
            info.context, invitation_id=typed_key(id, "ProjectInvitation")
        )

    @strawberry.mutation(
        description="Withdraw a pending invitation (the project's OWNER).", directives=[Auth()]
    )
    async def revoke_invitation(self, info: Info, id: strawberry.ID) -> bool:
        return await projects.revoke_invitation(
            info.context, invitation_id=typed_key(id, "ProjectInvitation")
        )

    @strawberry.mutation(
        description="Change a member's role (the project's OWNER). Making a member the OWNER hands the "
        "project over: the OWNER before becomes an EDITOR.",
        directives=[Auth()],
    )
    async def set_project_member_role(
        self, info: Info, project_id: strawberry.ID, user_id: strawberry.ID, role: ProjectRole
    ) -> ProjectMember:
        member = await projects.set_member_role(
            info.context,
            project_id=typed_key(project_id, "Project", field="projectId"),
            user_id=user_key(user_id, field="userId"),
            role=role,
        )
        return ProjectMember.from_record(member)

    @strawberry.mutation(
        description="Remove a member (the project's OWNER), or leave (any member but the OWNER). Their "
        "access ends at once; the tasks assigned to them are unassigned.",
        directives=[Auth()],
    )
    async def remove_project_member(
        self, info: Info, project_id: strawberry.ID, user_id: strawberry.ID
    ) -> bool:
        return await projects.remove_member(
            info.context,
            project_id=typed_key(project_id, "Project", field="projectId"),
            user_id=user_key(user_id, field="userId"),
        )

    @strawberry.mutation(
        description="Comment on a task the viewer sees (a project's VIEWERs too): 1 to 10,000 characters of "
        "plain text.",
        directives=[Auth()],
    )
    async def add_comment(self, info: Info, task_id: strawberry.ID, body: str) -> Comment:
        key = typed_key(task_id, "Task", field="taskId")
        return Comment.from_record(await comments.add_comment(info.context, task_id=key, body=body))

    @strawberry.mutation(description="Edit a comment (its author).", directives=[Auth()])
    async def update_comment(self, info: Info, id: strawberry.ID, body: str) -> Comment:
        key = typed_key(id, "Comment")
        return Comment.from_record(await comments.update_comment(info.context, comment_id=key, body=body))

    @strawberry.mutation(
        description="Delete a comment (its author, or the project's OWNER); returns its ID.",
        directives=[Auth()],
    )
    async def delete_comment(self, info: Info, id: strawberry.ID) -> strawberry.ID:
        await comments.delete_comment(info.context, comment_id=typed_key(id, "Comment"))
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

    @strawberry.mutation(
        description="Verify an address with the token from its verification mail (no login needed). For a "
        "change of address, the account takes the new address now. A bad, used or expired token: "
        "BAD_USER_INPUT with reason TOKEN_INVALID."
    )
    async def verify_email(self, info: Info, token: str) -> User:
        return User.from_model(await accounts.verify_email(info.context, token=token), trusted=True)

    @strawberry.mutation(
        description="Mail a new verification link to the viewer's address; false (no mail) when it is "
        "verified already. Rate-limited per account and per client address.",
        directives=[Auth()],
    )
    async def resend_verification_email(self, info: Info) -> bool:
        return await accounts.resend_verification_email(info.context)

    @strawberry.mutation(
        description="Mail a password reset link (valid 30 minutes) to the address, if it has an account. "
        "Always true, and as fast, whether or not it has one. Rate-limited per address and per client."
    )
    async def request_password_reset(self, info: Info, email: str) -> bool:
        return await accounts.request_password_reset(info.context, email=email)

    @strawberry.mutation(
        description="Set a new password with the token from a reset mail. Every session of the account ends "
        "(their sockets close) and the address is mailed a notice."
    )
    async def reset_password(self, info: Info, token: str, new_password: str) -> bool:
        return await accounts.reset_password(info.context, token=token, new_password=new_password)

    @strawberry.mutation(description="Change the viewer's name.", directives=[Auth()])
    async def update_profile(self, info: Info, input: UpdateProfileInput) -> User:
        return User.from_model(await accounts.update_profile(info.context, values=given(input)))

    @strawberry.mutation(
        description="Change the viewer's password. Every session ends, this one included: the answer holds "
        "the tokens of a new one. A wrong current password: BAD_USER_INPUT, reason WRONG_PASSWORD.",
        directives=[Auth()],
    )
    async def change_password(self, info: Info, current_password: str, new_password: str) -> AuthPayload:
        pair = await accounts.change_password(
            info.context, current_password=current_password, new_password=new_password
        )
        return AuthPayload.from_pair(pair)

    @strawberry.mutation(
        description="Ask to change the viewer's address: the new address is mailed a verification link and "
        "the account takes it once the link is followed; the old address is mailed a notice.",
        directives=[Auth()],
    )
    async def change_email(self, info: Info, new_email: str, password: str) -> bool:
        return await accounts.change_email(info.context, new_email=new_email, password=password)

    @strawberry.mutation(
        description="End one of the viewer's sessions (see `sessions`): its tokens stop working and its "
        "sockets close at once.",
        directives=[Auth()],
    )
    async def revoke_session(self, info: Info, id: strawberry.ID) -> bool:
        return await accounts.revoke_session(info.context, session_id=typed_key(id, "Session"))

    @strawberry.mutation(
        description="Mail the viewer a link (valid 24 h, single use) to a JSON export of the account and "
        "every task of theirs.",
        directives=[Auth()],
    )
    async def request_data_export(self, info: Info) -> bool:
        return await accounts.request_data_export(info.context)

    @strawberry.mutation(
        description="Delete the viewer's account with its tasks, sessions and tokens. The last active admin "
        "cannot.",
        directives=[Auth()],
    )
    async def delete_account(self, info: Info, password: str) -> bool:
        return await accounts.delete_account(info.context, password=password)

    @strawberry.mutation(
        description="Mail a user a password reset link (admins only).",
        directives=[Auth(requires=Role.ADMIN)],
    )
    async def send_password_reset(self, info: Info, user_id: strawberry.ID) -> bool:
        return await accounts.send_password_reset(info.context, user_id=user_key(user_id, field="userId"))

    @strawberry.mutation(
        description="Run a failed background job again, its attempts counted from zero (admins only).",
        directives=[Auth(requires=Role.ADMIN)],
    )
    async def retry_job(self, info: Info, id: strawberry.ID) -> bool:
        if not (str(id).isdigit() and len(str(id)) <= 18):  # a bigint
            raise BadUserInput("id: not the id of a job.", field="id")
        return await jobs.retry_job(info.context, job_id=int(id))

    @strawberry.mutation(
        description="Change the viewer's notification settings; a new `remindBeforeMinutes` moves the "
        "reminders of every open task.",
        directives=[Auth()],
    )
    async def update_notification_settings(
        self, info: Info, input: NotificationSettingsInput
    ) -> NotificationSettings:
        record = await notifications.update_settings(info.context, values=given(input))
        return NotificationSettings.from_record(record)

    @strawberry.mutation(
        description="Mark notifications read: those of `ids` (at most 100), or with `all: true` every one. "
        "Returns how many were unread; another user's ids count as none.",
        directives=[Auth()],
    )
    async def mark_notifications_read(
        self, info: Info, ids: list[strawberry.ID] | None = None, all: bool | None = False
    ) -> int:
        return await notifications.mark_read(
            info.context, ids=[str(key) for key in ids] if ids is not None else None, everything=bool(all)
        )

    @strawberry.mutation(
        description="Add a webhook (at most 10 per user). Its URL is checked now (scheme, host, every "
        "address it resolves to) and at each delivery. The payload's `secret` is shown this once.",
        directives=[Auth()],
    )
    async def create_webhook(self, info: Info, input: CreateWebhookInput) -> CreateWebhookPayload:
        record, secret = await webhooks.create_webhook(info.context, values=given(input))
        return CreateWebhookPayload(webhook=Webhook.from_record(record), secret=secret)

    @strawberry.mutation(description="Change a webhook. Another user's is NOT_FOUND.", directives=[Auth()])
    async def update_webhook(self, info: Info, id: strawberry.ID, input: UpdateWebhookInput) -> Webhook:
        record = await webhooks.update_webhook(
            info.context, webhook_id=typed_key(id, "Webhook"), values=given(input)
        )
        return Webhook.from_record(record)

    @strawberry.mutation(
        description="Delete a webhook and its delivery log; returns its id.", directives=[Auth()]
    )
    async def delete_webhook(self, info: Info, id: strawberry.ID) -> strawberry.ID:
        await webhooks.delete_webhook(info.context, webhook_id=typed_key(id, "Webhook"))
        return id

    @strawberry.mutation(
        description="A new signing secret, shown this once. Deliveries carry a signature by the previous one "
        "too for 24 hours, so the receiver can switch over.",
        directives=[Auth()],
    )
    async def rotate_webhook_secret(self, info: Info, id: strawberry.ID) -> CreateWebhookPayload:
        record, secret = await webhooks.rotate_secret(info.context, webhook_id=typed_key(id, "Webhook"))
        return CreateWebhookPayload(webhook=Webhook.from_record(record), secret=secret)

    @strawberry.mutation(
        description="POST a PING to the webhook now (a disabled one too) and answer how it went (at most "
        "10 s). It is in the delivery log and never retried.",
        directives=[Auth()],
    )
    async def test_webhook(self, info: Info, id: strawberry.ID) -> WebhookDelivery:
        record = await webhooks.test_webhook(info.context, webhook_id=typed_key(id, "Webhook"))
        return WebhookDelivery.from_record(record)

    @strawberry.mutation(
        description="Attempt a delivered or failed delivery once more, now, with the same webhook-id, and "
        "answer how it went. Its webhook must be enabled (WEBHOOK_DISABLED).",
        directives=[Auth()],
    )
    async def retry_webhook_delivery(self, info: Info, id: strawberry.ID) -> WebhookDelivery:
        record = await webhooks.retry_delivery(info.context, delivery_id=typed_key(id, "WebhookDelivery"))
        return WebhookDelivery.from_record(record)
