"""Making the first admin (the ``create-admin`` command)."""

from __future__ import annotations

from pydantic import ValidationError
from sqlalchemy import func
from sqlmodel import col, select

from auth.passwords import hash_password
from core.errors import BadUserInput
from core.settings import Settings
from models import Role, User
from models.columns import utcnow
from resolvers.inputs import Registration, normalize_email, validate
from resolvers.users import create_user
from taskql.data.engine import create_engine, create_sessionmaker


async def make_admin(settings: Settings, *, email: str, name: str, password: str) -> bool:
    """Create the admin, or promote the existing account with that email. True when created."""
    engine = create_engine(settings)
    try:
        async with create_sessionmaker(engine)() as db, db.begin():
            try:
                normalized = normalize_email(email)
            except ValueError as error:
                raise ValueError(f"admin.email: {error}.") from None
            existing = (await db.exec(select(User).where(func.lower(col(User.email)) == normalized))).first()
            if existing is not None:
                existing.role = Role.ADMIN
                db.add(existing)
                return False
            try:
                registration = validate(
                    Registration, {"email": email, "password": password, "name": name}, argument="admin"
                )
            except (BadUserInput, ValidationError) as error:
                raise ValueError(str(error)) from None
            admin = await create_user(
                db, registration, await hash_password(registration.password), role=Role.ADMIN
            )
            admin.email_verified_at = (
                utcnow()
            )  # the operator vouches for it: REQUIRE_VERIFIED_EMAIL lets it in
            db.add(admin)
            return True
    finally:
        await engine.dispose()
