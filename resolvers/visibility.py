"""Who may see whose data: a user their own, an admin everyone's. Anything else is NOT_FOUND, exactly as
for something that does not exist, so that no answer tells another user's data apart from a missing one."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from core.errors import NotFound
from core.ids import encode_id

if TYPE_CHECKING:
    from auth.viewer import Viewer
    from models import UserRecord
    from resolvers.context import Context


async def visible_user(ctx: Context, viewer: Viewer, user_id: uuid.UUID) -> UserRecord:
    user = await ctx.loaders.users.load(user_id) if viewer.can_see_owner(user_id) else None
    if user is None:
        raise NotFound.for_id("User", encode_id("User", user_id))
    return user


async def visible_owner(ctx: Context, viewer: Viewer, owner_id: uuid.UUID) -> uuid.UUID:
    """``owner_id``, if the viewer may see that owner's tasks and the owner exists."""
    return (await visible_user(ctx, viewer, owner_id)).id
