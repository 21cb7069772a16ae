"""Every private attribute of graphql-core that taskql touches, in one place, for one version of graphql-core.

Importing this module checks that the installed graphql-core is the one these functions were written for
(``pinned``; Strawberry pins no exact version, uv.lock does). Planned completion also overrides the
executor's internal hooks (``complete_object_value``, ``collect_subfields``, ``build_per_event_executor``),
whose signatures are this version's: ``schema.planning.execution`` imports this module for the same check.
"""

from __future__ import annotations

from typing import Any

from graphql.execution import Executor

from graphql import ValidationContext
from schema.planning import pinned

WRITTEN_FOR = "3.3.2"
pinned.require("graphql-core", WRITTEN_FOR, __name__)

# The private names touched here; no other module of ours may touch them (tests/test_compat.py).
PRIVATE_NAMES = frozenset({"_hide_suggestions", "_relevant_sub_fields"})


def hide_suggestions(context: ValidationContext) -> None:
    """Turn "Did you mean ...?" off for every rule of a validation run (graphql-core reads the flag, but
    ``validate`` sets it only from its own argument, which Strawberry never passes)."""
    context._hide_suggestions = True


def forget_collected_subfields(executor: Executor[Any]) -> None:
    """Give an executor copied from another (a subscription's, per event) memos of its own: the copy shares
    the original's dict of collected subfields otherwise."""
    executor._relevant_sub_fields = {}
