"""Who is asking: the viewer of a request, loaded fresh from the database on every request."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from core.errors import Forbidden, Unauthenticated
from models import Role


@dataclass(frozen=True, slots=True)
class Viewer:
    user_id: uuid.UUID
    session_id: uuid.UUID
    role: Role

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

    def can_see_owner(self, owner_id: uuid.UUID) -> bool:
        return self.is_admin or owner_id == self.user_id


def require_role(viewer: Viewer | None, required: Role, auth_error: Unauthenticated | None = None) -> Viewer:
    """The viewer, if it holds ``required``; else ``UNAUTHENTICATED`` (anonymous) or ``FORBIDDEN``."""
    if viewer is None:
        raise auth_error or Unauthenticated("You must be logged in: send 'Authorization: Bearer <token>'.")
    if not viewer.role.satisfies(required):
        raise Forbidden(f"This requires the {required.value} role.", requiredRole=required.value)
    return viewer
