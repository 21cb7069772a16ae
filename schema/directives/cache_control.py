"""``@cacheControl``: which query responses may be cached, for how long, and for whom (Apollo's hints).

The directive is Apollo Server's, with its rules, so the SDL reads the same to anyone who knows Apollo:

- a field's ``maxAge`` is its own hint's, else its return type's; with ``inheritMaxAge`` (on the field or the
  type) it is its parent field's; a leaf field (scalar, enum) without a hint inherits its parent's; any other
  field without a hint (root fields included) has ``maxAge`` 0, which makes the response uncacheable;
- a response's policy is the smallest ``maxAge`` over every field the operation selects, and PRIVATE if any
  hint on the way says PRIVATE (worked out by ``schema.analysis.cache_policies``).

The response cache (``taskql.cache.store``) keeps entries per viewer whatever the scope, and invalidates them
on every write, so ``maxAge`` bounds memory, not staleness; the scope decides the HTTP ``Cache-Control`` of
GET responses (PUBLIC may be kept by shared caches, PRIVATE only by the browser).
"""

from __future__ import annotations

from enum import Enum
from typing import Any

import strawberry
from strawberry.schema_directive import Location
from strawberry.types.unset import UNSET

# Entries are exact (invalidated on every write): their age only bounds the memory they hold.
DEFAULT_MAX_AGE = 300


@strawberry.enum(description="Who may keep a cached response: anyone (PUBLIC) or only its viewer (PRIVATE).")
class CacheControlScope(Enum):
    PUBLIC = "PUBLIC"
    PRIVATE = "PRIVATE"


@strawberry.schema_directive(
    locations=[Location.FIELD_DEFINITION, Location.OBJECT, Location.INTERFACE, Location.UNION],
    name="cacheControl",
    description="How long a response holding this field or type may be cached, and by whom (Apollo's "
    "cache hints). Fields without one are not cacheable, except leaves, which follow their parent.",
)
class CacheControl:
    # UNSET, not None: unset arguments are left out of the SDL, as in Apollo's (`@cacheControl(maxAge: 300)`).
    max_age: int | None = UNSET
    scope: CacheControlScope | None = UNSET
    inherit_max_age: bool | None = UNSET


PRIVATE = CacheControl(max_age=DEFAULT_MAX_AGE, scope=CacheControlScope.PRIVATE)
INHERIT = CacheControl(inherit_max_age=True)
# Never cached: what changes without a write that bumps the viewer's tags (the worker's doing).
NEVER = CacheControl(max_age=0)


def hint_of(definition: Any) -> CacheControl | None:
    """The ``@cacheControl`` of a Strawberry field or type definition, if it has one."""
    for directive in getattr(definition, "directives", None) or ():
        if isinstance(directive, CacheControl):
            return directive
    return None
