"""Which fields graphql-core executes itself, rather than a compiled plan completing them."""

from __future__ import annotations

from typing import Any

import pytest

from schema.planning.execution import PlannedExecutionContext


def executed_fields(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the fields graphql-core's ``execute_field`` runs from now on, in order (the list
    grows as the test goes on)."""
    executed: list[str] = []
    execute = PlannedExecutionContext.execute_field

    def counting(self: Any, parent_type: Any, source: Any, field_details_list: Any, *args: Any) -> Any:
        executed.append(field_details_list[0].node.name.value)
        return execute(self, parent_type, source, field_details_list, *args)

    monkeypatch.setattr(PlannedExecutionContext, "execute_field", counting)
    return executed
