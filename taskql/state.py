"""The typed request state: the one module that reads and writes an ASGI scope's ``state``.

Starlette's lifespan yields a dict that the server copies (shallowly) into every request's
``scope["state"]``; a request's own findings (its id, its media type, the cache's probe) go there too.
Each room declares the entries it owns as a ``StateKey`` with their type, after aiohttp's ``AppKey``: the
key's name is written once, every read is typed, and no room imports another's types to do so. One
dataclass with a field per entry would have to import every room's types here, at the bottom of the house.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any, Generic, TypeVar, cast

from starlette.types import Scope

T = TypeVar("T")


class StateKey(Generic[T]):
    """A typed entry of a scope's ``state``, declared ``KEY = StateKey[Type]("taskql.name")``."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def get(self, scope: Scope) -> T | None:
        state: MutableMapping[str, Any] = scope.get("state", {})
        return cast("T | None", state.get(self.name))

    def of(self, scope: Scope) -> T:
        """The entry, which must be there (set by the lifespan, or earlier in this request)."""
        value = self.get(scope)
        if value is None:
            raise LookupError(
                f"{self.name} is not in the scope's state: the lifespan did not run (serve the app with a "
                "server that runs it, or wrap it in asgi_lifespan.LifespanManager and use manager.app)"
            )
        return value

    def set(self, scope: Scope, value: T) -> None:
        scope.setdefault("state", {})[self.name] = value

    def pop(self, scope: Scope) -> T | None:
        state: MutableMapping[str, Any] = scope.get("state", {})
        return cast("T | None", state.pop(self.name, None))

    def entry(self, value: T) -> dict[str, Any]:
        """``{name: value}``: what a lifespan yields for this key."""
        return {self.name: value}

    def __repr__(self) -> str:
        return f"StateKey({self.name!r})"
