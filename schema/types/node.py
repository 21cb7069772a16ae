import strawberry

from schema.directives.cache_control import PRIVATE


@strawberry.interface(
    description="An object with a global ID, fetchable with `node(id:)` (Relay).", directives=[PRIVATE]
)
class Node:
    id: strawberry.ID = strawberry.field(description="Opaque global ID.")
