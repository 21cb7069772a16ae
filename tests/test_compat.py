"""Strawberry's and graphql-core's private attributes are touched in one module per library, which refuses to
load with another version than it was written for (``schema/planning/strawberry_compat.py``,
``schema/planning/graphql_core_compat.py``). Checked on the source: every module of ours is parsed."""

from __future__ import annotations

import ast
import importlib.util
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

from schema.planning import graphql_core_compat, pinned, strawberry_compat
from tests.processes import ROOT

OUR_PACKAGES = ("core", "models", "auth", "resolvers", "schema", "taskql", "tests", "bench")
# Where Strawberry's and graphql-core's objects are handled: no private name of theirs at all, there.
GRAPHQL_LAYERS = ("core", "models", "auth", "resolvers", "schema")
COMPAT = (strawberry_compat, graphql_core_compat)
COMPAT_MODULES = {Path(module.__file__ or "").resolve() for module in COMPAT}
LIBRARIES = {strawberry_compat.__name__: "strawberry", graphql_core_compat.__name__: "graphql"}
DISTRIBUTIONS = {
    strawberry_compat.__name__: "strawberry-graphql",
    graphql_core_compat.__name__: "graphql-core",
}


def is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def sources(packages: Iterable[str]) -> list[Path]:
    return [
        path.resolve()
        for package in packages
        for path in sorted((ROOT / package).rglob("*.py"))
        if "migrations" not in path.parts
    ]


def library_sources(package: str) -> list[Path]:
    spec = importlib.util.find_spec(package)
    assert spec is not None
    assert spec.origin is not None
    return sorted(Path(spec.origin).parent.rglob("*.py"))


def defined_names(paths: Iterable[Path], *, with_reads: bool) -> set[str]:
    """The private names a body of source defines: functions and methods, class attributes, slots, and
    attributes assigned on ``self``/``cls``; ``with_reads``, those it reads on anything too (for a
    library: what it reads is its own)."""
    names: set[str] = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names.add(node.target.id)
            elif isinstance(node, ast.Assign):
                names.update(target.id for target in node.targets if isinstance(target, ast.Name))
                if any(isinstance(target, ast.Name) and target.id == "__slots__" for target in node.targets):
                    names.update(
                        item.value
                        for item in ast.walk(node.value)
                        if isinstance(item, ast.Constant) and isinstance(item.value, str)
                    )
            elif isinstance(node, ast.Attribute) and (
                with_reads or (on_self(node) and isinstance(node.ctx, ast.Store))
            ):
                names.add(node.attr)
    return {name for name in names if is_private(name)}


def on_self(node: ast.Attribute) -> bool:
    return isinstance(node.value, ast.Name) and node.value.id in {"self", "cls"}


def touches(path: Path, *, on_own_instance: bool) -> Iterator[tuple[int, str]]:
    """Where a module reads or writes a private name: ``x._name``, ``f(_name=...)``, ``getattr(x, "_name")``
    (and ``setattr``, ``hasattr``). ``self._name`` too, with ``on_own_instance`` (a subclass's)."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (
            isinstance(node, ast.Attribute)
            and is_private(node.attr)
            and (on_own_instance or not on_self(node))
        ):
            yield node.lineno, node.attr
        elif isinstance(node, ast.Call):
            for keyword in node.keywords:
                if keyword.arg is not None and is_private(keyword.arg):
                    yield node.lineno, keyword.arg
            reflective = isinstance(node.func, ast.Name) and node.func.id in {"getattr", "setattr", "hasattr"}
            if reflective and len(node.args) > 1:
                name = node.args[1]
                if isinstance(name, ast.Constant) and isinstance(name.value, str) and is_private(name.value):
                    yield node.lineno, name.value


def outside_compat(paths: Iterable[Path]) -> list[Path]:
    return [path for path in paths if path not in COMPAT_MODULES]


def test_no_module_outside_the_compat_modules_touches_a_private_name_they_wrap() -> None:
    wrapped = strawberry_compat.PRIVATE_NAMES | graphql_core_compat.PRIVATE_NAMES
    found = [
        f"{path.relative_to(ROOT)}:{line}: {name}"
        for path in outside_compat(sources(OUR_PACKAGES))
        for line, name in touches(path, on_own_instance=False)
        if name in wrapped
    ]
    assert not found, (
        "use schema/planning/strawberry_compat.py or graphql_core_compat.py instead:\n" + "\n".join(found)
    )


def test_from_core_to_schema_no_private_name_of_strawberry_or_graphql_core_is_touched_outside_them() -> None:
    """Beyond the names wrapped today: a new private attribute of either library, read or written anywhere
    from ``core`` to ``schema`` (a subclass's ``self._name`` included), must go through its compat module."""
    ours = defined_names(outside_compat(sources(OUR_PACKAGES)), with_reads=False)
    theirs = {
        name
        for package in LIBRARIES.values()
        for name in defined_names(library_sources(package), with_reads=True)
    }
    found = [
        f"{path.relative_to(ROOT)}:{line}: {name}"
        for path in outside_compat(sources(GRAPHQL_LAYERS))
        for line, name in touches(path, on_own_instance=True)
        if name in theirs - ours
    ]
    assert not found, "\n".join(found)


@pytest.mark.parametrize("compat", COMPAT, ids=lambda module: module.__name__)
def test_each_name_a_compat_module_wraps_is_private_to_its_library_and_touched_by_it(
    compat: ModuleType,
) -> None:
    names: frozenset[str] = compat.PRIVATE_NAMES
    assert names <= defined_names(library_sources(LIBRARIES[compat.__name__]), with_reads=True)
    path = Path(compat.__file__ or "").resolve()
    assert {name for _, name in touches(path, on_own_instance=False)} == names


@pytest.mark.parametrize("compat", COMPAT, ids=lambda module: module.__name__)
def test_each_compat_module_was_written_for_the_version_uv_lock_pins(compat: ModuleType) -> None:
    distribution = DISTRIBUTIONS[compat.__name__]
    lock = (ROOT / "uv.lock").read_text()
    locked = re.search(rf'^name = "{re.escape(distribution)}"\nversion = "([^"]+)"', lock, re.MULTILINE)
    assert locked is not None
    assert locked.group(1) == compat.WRITTEN_FOR


def test_a_compat_module_refuses_a_version_it_was_not_written_for_and_says_what_to_do() -> None:
    with pytest.raises(pinned.UnsupportedVersion) as refused:
        pinned.require("strawberry-graphql", "0.1.0", "schema.planning.strawberry_compat")
    message = str(refused.value)
    assert f"strawberry-graphql {strawberry_compat.WRITTEN_FOR} is installed" in message
    assert "private attributes of strawberry-graphql 0.1.0" in message
    assert "uv sync --frozen" in message
    assert "WRITTEN_FOR" in message
    pinned.require("strawberry-graphql", strawberry_compat.WRITTEN_FOR, "schema.planning.strawberry_compat")


def test_the_extensions_runner_enters_the_same_hooks_as_strawberrys_in_the_same_order() -> None:
    from strawberry.extensions.runner import SchemaExtensionsRunner

    from schema.build import build_schema
    from taskql.ops.access_log import RequestFacts

    def hooks(runner: SchemaExtensionsRunner) -> list[tuple[str, str, bool, str]]:
        phases = (runner.operation(), runner.parsing(), runner.validation(), runner.executing())
        return [
            (phase.HOOK_NAME, type(hook.extension).__name__, hook.is_async, type(hook.hook()).__name__)
            for phase in phases
            for hook in phase.hooks
        ]  # fmt: skip

    extensions = build_schema([RequestFacts]).get_extensions()
    ours = hooks(strawberry_compat.ExtensionsRunner(None, extensions))  # type: ignore[arg-type]
    theirs = hooks(SchemaExtensionsRunner(None, extensions))  # type: ignore[arg-type]
    assert ours == theirs
    assert len(ours) >= 10  # every phase of ours has hooks: the comparison compares something
