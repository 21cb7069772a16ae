"""``node(id:)``: any object by its global ID, under the same visibility rules as its own field."""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.errors import NotFound
from core.ids import decode_id
from models import CommentRecord, ProjectRecord, TaskRecord, UserRecord
from resolvers.comments import get_comment
from resolvers.notifications import NotificationRecord, get_notification
from resolvers.projects import InvitationRecord, get_invitation, get_project
from resolvers.tasks import get_task
from resolvers.users import get_user
from resolvers.webhooks import WebhookRecord, get_webhook

if TYPE_CHECKING:
    from resolvers.context import Context


Found = (
    TaskRecord
    | UserRecord
    | NotificationRecord
    | WebhookRecord
    | ProjectRecord
    | InvitationRecord
    | CommentRecord
)


async def get_node(ctx: Context, *, global_id: str) -> Found:
    type_name, key = decode_id(global_id)
    if type_name == "Task":
        return await get_task(ctx, task_id=key)
    if type_name == "User":
        return await get_user(ctx, user_id=key)
    if type_name == "Notification" and (notification := await get_notification(ctx, key)) is not None:
        return notification
    if type_name == "Webhook" and (webhook := await get_webhook(ctx, key)) is not None:
        return webhook
    if type_name == "Project":
        return await get_project(ctx, key)
    if type_name == "ProjectInvitation" and (invitation := await get_invitation(ctx, key)) is not None:
        return invitation
    if type_name == "Comment" and (comment := await get_comment(ctx, key)) is not None:
        return comment
    raise NotFound(f"No object with id {global_id!r}.", id=global_id)
