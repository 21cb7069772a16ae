"""The database tables (SQLModel) and the enums they store. Imports nothing of ours but ``core``."""

from models.enums import Role, TaskPriority, TaskStatus
from models.session import AuthSession, RefreshToken
from models.task import Task
from models.user import User

__all__ = ["AuthSession", "RefreshToken", "Role", "Task", "TaskPriority", "TaskStatus", "User"]
