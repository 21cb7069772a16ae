import strawberry


@strawberry.interface(description="An object with a global ID, fetchable with `node(id:)` (Relay).")
class Node:
    id: strawberry.ID = strawberry.field(description="Opaque global ID.")
