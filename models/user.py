import uuid
from datetime import datetime

from sqlalchemy import Index, func, text
from sqlmodel import Field, SQLModel

from models.columns import enum_column, timestamp_column, utcnow
from models.enums import Role


class User(SQLModel, table=True):
    __tablename__ = "users"
    __table_args__ = (
        # Emails are stored normalized; this index makes uniqueness case-insensitive whatever wrote them.
        Index("users_email_lower_key", func.lower(text("email")), unique=True),
        Index("users_created_at_id_idx", "created_at", "id"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    email: str = Field(max_length=254)
    name: str = Field(max_length=100)
    password_hash: str
    role: Role = Field(default=Role.USER, sa_column=enum_column(Role, "user_role", Role.USER))
    is_active: bool = Field(default=True)
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
    # When the owner of ``email`` proved it (followed a verification or reset link); None: not yet.
    email_verified_at: datetime | None = Field(
        default=None, sa_column=timestamp_column(nullable=True, default_now=False)
    )
    updated_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
