"""The job queue's tables belong to pgqueuer (created by migration 0004 from its own DDL), not to the models:
alembic compares only the rest with the models."""

from typing import Any

QUEUE_TABLE_PREFIX = "pgqueuer"


def compared_with_models(obj: Any, name: str | None, type_: str, *_: Any) -> bool:
    """Alembic's ``include_object``: leave pgqueuer's tables (and their indexes) out of the comparison."""
    table = getattr(obj, "table", obj) if type_ != "table" else obj
    table_name = name if type_ == "table" else getattr(table, "name", None)
    return not (table_name or "").startswith(QUEUE_TABLE_PREFIX)
