"""Making the first admin (the ``create-admin`` command)."""

from __future__ import annotations

from pydantic import ValidationError
from sqlalchemy import func
from sqlmodel import col, select

from core.errors import BadUserInput
from core.settings import Settings
from models import Role, User
from resolvers.inputs import Registration, validate
from resolvers.users import create_user
from taskql.db import create_engine, create_sessionmaker


async def make_admin(settings: Settings, *, email: str, name: str, password: str) -> bool:
    """Create the admin, or promote the existing account with that email. True when created."""
    engine = create_engine(settings)
    try:
        async with create_sessionmaker(engine)() as db, db.begin():
            existing = (
                await db.exec(select(User).where(func.lower(col(User.email)) == email.strip().lower()))
            ).first()
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
            await create_user(db, registration, role=Role.ADMIN)
            return True
    finally:
        await engine.dispose()
