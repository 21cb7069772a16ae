"""Planned completion answers as graphql-core does: the same data, the same errors at the same paths."""

from __future__ import annotations

import asyncio
from enum import Enum
from typing import Any

import pytest
import strawberry
from strawberry.extensions import ParserCache, ValidationCache
from strawberry.types import ExecutionResult

from schema.planning import execution
from schema.planning.execution import PlannedExecutionContext
from schema.planning.plans import planned
from tests.executed import executed_fields

VARIANT_CALLS: list[str] = []


async def _greeting_later(name: str, context: dict[str, str]) -> str:
    await asyncio.sleep(0)
    return f"{context['greet']}, later, {name}"


def _greeting(leaf: Any, context: dict[str, str]) -> Any:
    if leaf.name == "leaf 1":  # an awaitable: graphql-core takes the row over
        return _greeting_later(leaf.name, context)
    if leaf.name == "n":
        raise ValueError("no greeting for n")
    return f"{context['greet']}, {leaf.name}"


async def _farewell_later(name: str) -> str:
    await asyncio.sleep(0)
    if name == "leaf 0":
        raise ValueError(f"no farewell for {name}")
    return f"bye, {name}"


def _farewell(leaf: Any, context: Any) -> Any:
    """An awaitable for most rows (a dataloader's value not loaded yet), a plain value for one."""
    return f"bye now, {leaf.name}" if leaf.name == "leaf 2" else _farewell_later(leaf.name)


def _greeting_variant(leaf: Any, context: dict[str, str]) -> Any:
    VARIANT_CALLS.append(leaf.name)
    return _greeting(leaf, context)


@strawberry.enum
class Colour(Enum):
    RED = "red"
    BLUE = "blue"


@strawberry.type
class Leaf:
    name: str
    colour: Colour
    tags: list[str]
    maybe: str | None
    count: int = 1
    flag: bool = True
    ratio: float = 0.5
    ident: strawberry.ID = strawberry.ID("id-1")
    shade: Colour | None = None

    @strawberry.field
    def shout(self) -> str:
        return self.name.upper()

    @strawberry.field
    def broken(self) -> str:
        raise ValueError("broken resolver")

    @strawberry.field
    @planned(_greeting_variant)
    def greeting(self, info: strawberry.Info) -> str:
        return _greeting(self, info.context)  # type: ignore[no-any-return]

    @strawberry.field
    @planned(_farewell)
    def farewell(self, info: strawberry.Info) -> str:
        return _farewell(self, info.context)  # type: ignore[no-any-return]

    @strawberry.field
    async def later(self) -> str:
        await asyncio.sleep(0)
        return f"later {self.name}"

    @strawberry.field
    async def later_broken(self) -> str:
        await asyncio.sleep(0)
        if self.name == "leaf 0":
            raise ValueError(f"later broken for {self.name}")
        return f"later {self.name}"

    @strawberry.field
    async def later_maybe(self) -> str | None:
        await asyncio.sleep(0)
        if self.name in {"leaf 0", "leaf 2"}:
            raise ValueError(f"later maybe for {self.name}")
        return self.name

    @strawberry.field
    async def repeated(self, times: int) -> str:
        await asyncio.sleep(0)
        return self.name * times

    @strawberry.field
    async def twin(self) -> Leaf:
        await asyncio.sleep(0)
        return Leaf(name=f"twin of {self.name}", colour=self.colour, tags=[], maybe=None)


@strawberry.type
class Branch:
    label: str
    leaves: list[Leaf]
    first: Leaf | None
    required: Leaf


@strawberry.type
class Query:
    @strawberry.field
    def branches(self) -> list[Branch]:
        good = [Leaf(name=f"leaf {i}", colour=Colour.RED, tags=["a", "b"], maybe=None) for i in range(3)]
        null_name = Leaf(name=None, colour=Colour.BLUE, tags=[], maybe="m")  # type: ignore[arg-type]
        # Values of the wrong Python type, as a careless resolver could return them: coerced or refused
        # exactly as graphql-core does.
        wrong: Any = {"colour": "blue", "tags": ["x", 1], "flag": 1, "ident": 7}
        odd = Leaf(name="odd", maybe="m", count=2**40, ratio=float("inf"), **{**wrong, "ident": "i"})
        numbers = Leaf(
            name="n", colour=Colour.RED, tags=[], maybe=None, count=-5, flag=False, shade=Colour.BLUE
        )
        numbers.ident = wrong["ident"]
        return [
            Branch(label="fine", leaves=good, first=good[0], required=good[1]),
            Branch(label="bad leaf", leaves=[good[0], null_name], first=None, required=good[2]),
            Branch(label="bad required", leaves=[], first=None, required=None),  # type: ignore[arg-type]
            Branch(label="odd values", leaves=[numbers, odd], first=numbers, required=odd),
        ]

    @strawberry.field
    def greeters(self) -> list[Leaf | None]:
        names = ["leaf 0", "leaf 1", "leaf 2", "n"]
        return [Leaf(name=name, colour=Colour.RED, tags=[], maybe=None) for name in names]


PLANNED = strawberry.Schema(query=Query, execution_context_class=PlannedExecutionContext)
GENERAL = strawberry.Schema(query=Query)

DOCUMENTS = [
    "{ branches { label leaves { name colour tags maybe } } }",
    "{ branches { label first { name } required { name shout } } }",
    "{ branches { __typename label leaves { __typename alias: name shout } } }",
    "{ branches { ...B } } fragment B on Branch { label leaves { ...L } } fragment L on Leaf { name }",
    "{ branches { label leaves { ... on Leaf { name colour } } } }",
    "{ branches { label leaves { name broken } } }",
    "{ branches { leaves { name later } } }",
    "query($skip: Boolean!) { branches { label @skip(if: $skip) leaves { name @include(if: $skip) } } }",
    "{ branches { label leaves { count flag ratio ident shade } } }",
    "{ branches { first { count ident shade colour tags } } }",
    "{ branches { required { tags } } }",
    "{ branches { label leaves { name greeting } required { greeting } } }",
    "{ branches { label @skip(if: true) first { name @include(if: false) maybe } } }",
    # Async fields: executed after the plan's run, their errors propagated as graphql-core does.
    "{ branches { label first { name laterBroken } required { name } } }",
    "{ greeters { name later laterBroken } }",
    "{ greeters { name laterMaybe } }",
    "{ branches { label leaves { name laterBroken } } }",
    "{ branches { label required { laterMaybe later } first { laterMaybe } } }",
    "{ greeters { name repeated(times: 2) twin { name later laterBroken twin { laterMaybe } } } }",
    "{ greeters { twin { twin { laterBroken } } } }",
    # Sync resolvers returning awaitables: the field is executed after the plan's run, errors included.
    "{ greeters { name colour farewell } }",
    "{ branches { label first { name farewell } } }",
    "{ branches { label leaves { farewell } } }",
    "{ branches { label required { farewell } } }",
    "{ greeters { twin { farewell } farewell } }",
]


def answer(result: ExecutionResult) -> dict[str, Any]:
    return {
        "data": result.data,
        "errors": sorted((e.message, tuple(e.path or ())) for e in result.errors or []),
    }


@pytest.mark.parametrize("document", DOCUMENTS)
@pytest.mark.parametrize("skip", [True, False])
async def test_planned_completion_answers_as_graphql_core_does(document: str, skip: bool) -> None:
    variables = {"skip": skip} if "$skip" in document else None
    planned = await PLANNED.execute(document, variable_values=variables, context_value=CONTEXT)
    general = await GENERAL.execute(document, variable_values=variables, context_value=CONTEXT)
    assert answer(planned) == answer(general)


CONTEXT = {"greet": "hello"}


async def test_a_resolvers_variant_for_plans_answers_as_the_resolver_without_a_resolve_info_per_row(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    infos: list[str] = []
    build = PlannedExecutionContext.build_resolve_info

    def counting(self: Any, field_def: Any, *args: Any) -> Any:
        infos.append(field_def.ast_node.name.value if field_def.ast_node else "?")
        return build(self, field_def, *args)

    monkeypatch.setattr(PlannedExecutionContext, "build_resolve_info", counting)
    VARIANT_CALLS.clear()
    document = "{ greeters { name greeting } }"
    planned = await PLANNED.execute(document, context_value=CONTEXT)
    general = await GENERAL.execute(document, context_value=CONTEXT)
    assert answer(planned) == answer(general)
    assert planned.data == {
        "greeters": [
            {"name": "leaf 0", "greeting": "hello, leaf 0"},
            {"name": "leaf 1", "greeting": "hello, later, leaf 1"},
            {"name": "leaf 2", "greeting": "hello, leaf 2"},
            None,  # its resolver raised
        ]
    }
    assert [(e.message, e.path) for e in planned.errors or []] == [
        ("no greeting for n", ["greeters", 3, "greeting"])
    ]
    assert {"leaf 0", "leaf 2"} <= set(VARIANT_CALLS)
    # Rows the variant answered built no resolve info for it; those it could not (an awaitable, an
    # error) were completed by graphql-core, which did.
    assert infos.count("greeting") < len(VARIANT_CALLS)


async def test_an_async_field_leaves_its_rows_planned_and_is_executed_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    executed = executed_fields(monkeypatch)
    document = "{ greeters { name colour later } }"
    planned = await PLANNED.execute(document, context_value=CONTEXT)
    assert answer(planned) == answer(await GENERAL.execute(document, context_value=CONTEXT))
    assert executed == ["greeters"] + ["later"] * 4


async def test_a_resolver_returning_an_awaitable_leaves_only_that_field_to_graphql_core(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    executed = executed_fields(monkeypatch)
    document = "{ greeters { name colour farewell } }"
    planned = await PLANNED.execute(document, context_value=CONTEXT)
    assert answer(planned) == answer(await GENERAL.execute(document, context_value=CONTEXT))
    assert planned.data == {
        "greeters": [
            None,  # its farewell failed after the plan's run: the nearest nullable position is the row
            {"name": "leaf 1", "colour": "RED", "farewell": "bye, leaf 1"},
            {"name": "leaf 2", "colour": "RED", "farewell": "bye now, leaf 2"},
            {"name": "n", "colour": "RED", "farewell": "bye, n"},
        ]
    }
    # The rows stayed planned: graphql-core executed the root field and the three awaited farewells only.
    assert executed == ["greeters", "farewell", "farewell", "farewell"]


async def test_an_async_fields_error_nulls_the_nearest_nullable_position_of_the_plan() -> None:
    result = await PLANNED.execute("{ branches { label first { name laterBroken } } }")
    assert result.data is not None
    # A branch's plan completes its first leaf; laterBroken is non-null there, first is not.
    assert result.data["branches"][0] == {"label": "fine", "first": None}
    assert result.data["branches"][3] == {
        "label": "odd values",
        "first": {"name": "n", "laterBroken": "later n"},
    }
    assert [(e.message, e.path) for e in result.errors or []] == [
        ("later broken for leaf 0", ["branches", 0, "first", "laterBroken"])
    ]


async def test_a_null_in_a_non_null_field_nulls_its_parent_with_the_error_at_its_path() -> None:
    result = await PLANNED.execute("{ branches { label leaves { name } } }")
    assert result.data is None  # branches is a non-null list of non-null branches
    assert [(e.message, e.path) for e in result.errors or []] == [
        ("Cannot return null for non-nullable field Leaf.name.", ["branches", 1, "leaves", 1, "name"])
    ]


async def test_rows_are_completed_by_the_plan_not_field_by_field() -> None:
    calls: dict[str, int] = {}

    def counting(base: type) -> type:
        class Counting(base):  # type: ignore[misc]
            def execute_field(self, *args: Any, **kwargs: Any) -> Any:
                calls[base.__name__] = calls.get(base.__name__, 0) + 1
                return super().execute_field(*args, **kwargs)

        return Counting

    document = DOCUMENTS[0]
    for base, schema in ((PlannedExecutionContext, PLANNED), (GENERAL.execution_context_class, GENERAL)):
        counted = strawberry.Schema(query=Query, execution_context_class=counting(base))
        assert answer(await counted.execute(document)) == answer(await schema.execute(document))
    assert calls["PlannedExecutionContext"] < calls["StrawberryGraphQLCoreExecutionContext"] / 5, calls


CACHED = strawberry.Schema(
    query=Query, execution_context_class=PlannedExecutionContext, extensions=[ParserCache, ValidationCache]
)


async def test_a_document_seen_before_reuses_its_plans(monkeypatch: pytest.MonkeyPatch) -> None:
    compiled: list[str] = []
    compile_plan = execution._Compiler.compile

    def counting(self: Any, return_type: Any, field_details_list: Any) -> Any:
        compiled.append(return_type.name)
        return compile_plan(self, return_type, field_details_list)

    monkeypatch.setattr(execution._Compiler, "compile", counting)
    document = "{ branches { label leaves { name colour count } } }"
    first = await CACHED.execute(document)
    made = len(compiled)
    second = await CACHED.execute(document)
    assert made > 0
    assert len(compiled) == made  # the second request compiled nothing
    assert answer(first) == answer(second) == answer(await GENERAL.execute(document))


async def test_a_selection_that_depends_on_variables_is_planned_for_each_request() -> None:
    document = "query($on: Boolean!) { branches { label leaves { name @include(if: $on) colour } } }"
    for on in (True, False, True):
        planned = await CACHED.execute(document, variable_values={"on": on})
        general = await GENERAL.execute(document, variable_values={"on": on})
        assert answer(planned) == answer(general)
