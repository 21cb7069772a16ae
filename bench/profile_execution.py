"""What two changes outside the schema types would give TaskPage: a leaner executor, and no pool pre-ping.

    python -m bench.profile_execution ab [--rounds 10] [--per-round 40] [VARIANT ...]
    python -m bench.profile_execution serve [--lean] [--no-pre-ping] [--port 8098]

Both are prototypes measured here, not used by the app:

- ``LeanExecutionContext``: a field that only reads an attribute (Strawberry's basic fields: no resolver,
  no arguments, no field extension, no ``@auth`` guard) and returns a scalar, an enum or a list of
  non-null ones is completed in a few lines instead of graphql-core's path (resolve info, ``Path``,
  awaitable checks, non-null and list recursion). Anything unusual (a null in a non-null field, a value
  that does not coerce, an exception) falls back to the normal path, which reports it exactly as before.
  Such fields returning an object or a list of non-null objects skip the resolve info and the resolver
  call, and complete their objects as graphql-core does (same error handling, same paths).
  To adopt it: ``execution_context_class=LeanExecutionContext`` in ``schema/build.py``.
- ``pool_pre_ping=False`` (``taskql/db.py``): with asyncpg, SQLAlchemy's pre-ping of a connection outside a
  transaction is ``BEGIN; ;ROLLBACK`` (three round trips) at every checkout, three checkouts per TaskPage.

``ab`` runs TaskPage's context and execution in process (as ``GraphQLView.get_context`` and the schema do,
without HTTP), alternating the variants in rounds on one process, and prints CPU per request (the minimum
round is the least disturbed by other work on the machine). Variants: ``base``, ``lean``, ``noping``,
``lean+noping``, and ``leanleaves`` (the leaf fields' short path only). ``serve`` is
``python -m taskql serve`` with the prototypes switched on, for ``bench.profile_taskpage load --server``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from graphql.pyutils import Path as ResponsePath
from graphql.pyutils import Undefined, gather_with_cancel
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from bench.tasks_query import ADMIN, ROOT
from graphql import GraphQLList, GraphQLNonNull, GraphQLObjectType, is_leaf_type

QUERY = (ROOT / "graphql" / "queries" / "TaskPage.graphql").read_text()

# A leaf field: (attribute, coerce, nullable, a list of non-null items)
Plan = tuple[str, Any, bool, bool]
_PLANS: dict[GraphQLObjectType, dict[str, Plan]] = {}


class ObjectPlan:
    """A basic field whose value is an object, or a list of non-null objects, of ``object_type``."""

    __slots__ = ("check", "item_type", "listed", "name", "nullable", "object_type", "return_type")

    def __init__(self, name: str, return_type: Any, object_type: GraphQLObjectType, listed: bool) -> None:
        self.name, self.return_type, self.object_type, self.listed = name, return_type, object_type, listed
        self.nullable = not isinstance(return_type, GraphQLNonNull)
        self.item_type: Any = GraphQLNonNull(object_type) if listed else None
        # Strawberry's generated is_type_of never reads its info argument.
        self.check: Any = object_type.is_type_of


_OBJECT_PLANS: dict[GraphQLObjectType, dict[str, ObjectPlan]] = {}


def _object_plan(field: Any) -> ObjectPlan | None:
    definition = (field.extensions or {}).get("strawberry-definition")
    if (
        definition is None
        or not definition.is_basic_field
        or getattr(field.resolve, "__name__", "") != "_get_basic_result"
        or definition.default_resolver is not getattr
        or field.args
    ):
        return None
    field_type = field.type.of_type if isinstance(field.type, GraphQLNonNull) else field.type
    listed = isinstance(field_type, GraphQLList)
    if listed:
        if not isinstance(field_type.of_type, GraphQLNonNull):
            return None
        field_type = field_type.of_type.of_type
    if not isinstance(field_type, GraphQLObjectType):
        return None
    check = field_type.is_type_of
    if check is not None and "_get_is_type_of" not in getattr(check, "__qualname__", ""):
        return None
    return ObjectPlan(definition.python_name, field.type, field_type, listed)


def _object_plans(parent_type: GraphQLObjectType) -> dict[str, ObjectPlan]:
    plans = _OBJECT_PLANS.get(parent_type)
    if plans is None:
        plans = _OBJECT_PLANS[parent_type] = {
            name: plan
            for name, field in parent_type.fields.items()
            if (plan := _object_plan(field)) is not None
        }
    return plans


def _plan(field: Any) -> Plan | None:
    definition = (field.extensions or {}).get("strawberry-definition")
    resolve = field.resolve
    if (
        definition is None
        or not definition.is_basic_field
        or getattr(resolve, "__name__", "") != "_get_basic_result"  # not wrapped (by @auth, ...)
        or definition.default_resolver is not getattr
        or field.args
    ):
        return None
    field_type = field.type
    nullable = not isinstance(field_type, GraphQLNonNull)
    if not nullable:
        field_type = field_type.of_type
    listed = isinstance(field_type, GraphQLList)
    if listed:
        item = field_type.of_type
        if not isinstance(item, GraphQLNonNull) or not is_leaf_type(item.of_type):
            return None
        field_type = item.of_type
    if not is_leaf_type(field_type):
        return None
    return definition.python_name, field_type.coerce_output_value, nullable, listed


def _plans(parent_type: GraphQLObjectType) -> dict[str, Plan]:
    plans = _PLANS.get(parent_type)
    if plans is None:
        plans = _PLANS[parent_type] = {
            name: plan for name, field in parent_type.fields.items() if (plan := _plan(field)) is not None
        }
    return plans


_SLOW: Any = object()  # take graphql-core's normal path


class _Unusual(Exception):  # not an error: the normal path takes over
    pass


def _completed(plan: Plan, source: Any) -> Any:
    name, coerce, nullable, listed = plan
    value = getattr(source, name)
    if value is None:
        if nullable:
            return None
        raise _Unusual
    if listed:
        if type(value) is not list:
            raise _Unusual
        items = [coerce(item) for item in value]
        for item in items:
            if item is None or item is Undefined:
                raise _Unusual
        return items
    coerced = coerce(value)
    if coerced is None or coerced is Undefined:
        raise _Unusual
    return coerced


class LeanExecutionContext(StrawberryGraphQLCoreExecutionContext):
    """graphql-core's ``execute_fields`` with a short path for attribute-reading leaf fields, and for
    attribute-reading object fields (``objects``: no resolve info, no resolver call)."""

    objects = True

    def execute_fields(
        self,
        parent_type: GraphQLObjectType,
        source_value: Any,
        path: ResponsePath | None,
        grouped_field_set: Any,
        position_context: Any,
    ) -> Any:
        manager = self.middleware_manager
        if manager is not None and manager.middlewares:  # an extension wraps every resolver
            return super().execute_fields(
                parent_type, source_value, path, grouped_field_set, position_context
            )
        plans, object_plans = _plans(parent_type), _object_plans(parent_type)
        results: dict[str, Any] = {}
        is_awaitable = self.is_awaitable
        awaitable_fields: list[str] = []
        try:
            for response_name, field_details_list in grouped_field_set.items():
                node = field_details_list[0].node
                plan = None if node.arguments else plans.get(node.name.value)
                if plan is not None:
                    try:
                        results[response_name] = _completed(plan, source_value)
                        continue
                    except Exception:  # noqa: S110  the normal path below reports it, as it always did
                        pass
                object_plan = None if node.arguments else object_plans.get(node.name.value)
                if object_plan is not None and position_context is None and self.objects:
                    result = self._complete_object(
                        object_plan, source_value, field_details_list, path, response_name, parent_type
                    )
                    if result is not _SLOW:
                        if result is not Undefined:
                            results[response_name] = result
                            if is_awaitable(result):
                                awaitable_fields.append(response_name)
                        continue
                result = self.execute_field(
                    parent_type,
                    source_value,
                    field_details_list,
                    ResponsePath(path, response_name, parent_type.name),
                    position_context,
                )
                if result is not Undefined:
                    results[response_name] = result
                    if is_awaitable(result):
                        awaitable_fields.append(response_name)
        except Exception:
            if awaitable_fields:
                self.settle_in_background([results[field] for field in awaitable_fields])
            raise
        if not awaitable_fields:
            return results

        async def get_results() -> dict[str, Any]:
            if len(awaitable_fields) == 1:
                field = awaitable_fields[0]
                results[field] = await results[field]
            else:
                awaited = await gather_with_cancel(*(results[field] for field in awaitable_fields))
                results.update(zip(awaitable_fields, awaited, strict=True))
            return results

        return get_results()

    def _complete_object(
        self,
        plan: ObjectPlan,
        source: Any,
        field_details_list: Any,
        path: ResponsePath | None,
        response_name: str,
        parent_type: GraphQLObjectType,
    ) -> Any:
        """What ``execute_field`` and ``complete_value`` do for such a field, without resolve info; ``_SLOW``
        (before anything ran) when the value is unusual, so that the normal path reports it."""
        if any(details.node.directives for details in field_details_list):  # @stream, ...
            return _SLOW
        value = getattr(source, plan.name)
        if value is None:
            return None if plan.nullable else _SLOW
        grouped, new_defer_usages, _forbidden = self.collect_subfields(plan.object_type, field_details_list)
        if new_defer_usages:
            return _SLOW
        check = plan.check
        if plan.listed:
            if type(value) is not list:
                return _SLOW
            for item in value:
                if item is None or (check is not None and not check(item, None)):
                    return _SLOW
        elif check is not None and not check(value, None):
            return _SLOW
        field_path = ResponsePath(path, response_name, parent_type.name)
        try:
            if plan.listed:
                completed = self._complete_items(plan, value, grouped, field_details_list, field_path)
            else:
                completed = self.execute_fields(plan.object_type, value, field_path, grouped, None)
            if self.is_awaitable(completed):
                return self._await_field(completed, plan.return_type, field_details_list, field_path)
        except Exception as raw_error:
            self.handle_field_error(raw_error, plan.return_type, field_details_list, field_path)
            return None
        return completed

    def _complete_items(
        self, plan: ObjectPlan, items: list[Any], grouped: Any, field_details_list: Any, path: ResponsePath
    ) -> Any:
        """``complete_iterable_value`` for non-null objects (no @stream)."""
        is_awaitable = self.is_awaitable
        completed: list[Any] = []
        awaitable_indices: list[int] = []
        try:
            for index, item in enumerate(items):
                item_path = path.add_key(index, None)
                try:
                    result = self.execute_fields(plan.object_type, item, item_path, grouped, None)
                    if is_awaitable(result):
                        result = self._await_field(result, plan.item_type, field_details_list, item_path)
                        awaitable_indices.append(index)
                except Exception as raw_error:
                    self.handle_field_error(raw_error, plan.item_type, field_details_list, item_path)
                    result = None
                completed.append(result)
        except Exception:
            if awaitable_indices:
                self.settle_in_background([completed[index] for index in awaitable_indices])
            raise
        if not awaitable_indices:
            return completed

        async def get_completed() -> list[Any]:
            if len(awaitable_indices) == 1:
                completed[awaitable_indices[0]] = await completed[awaitable_indices[0]]
            else:
                awaited = await gather_with_cancel(*(completed[index] for index in awaitable_indices))
                for index, result in zip(awaitable_indices, awaited, strict=True):
                    completed[index] = result
            return completed

        return get_completed()

    async def _await_field(
        self, completed: Any, return_type: Any, field_details_list: Any, path: ResponsePath
    ) -> Any:
        try:
            return await completed
        except Exception as raw_error:
            self.handle_field_error(raw_error, return_type, field_details_list, path)
            return None


async def ab(args: argparse.Namespace) -> None:
    from sqlmodel import select

    from auth.sessions import load_viewer, start_session
    from auth.tokens import decode_access_token
    from core.settings import Settings
    from models import User, UserRecord
    from resolvers.context import Context
    from schema.build import build_schema
    from taskql import services
    from taskql.app import token_config
    from taskql.db import create_engine, create_sessionmaker

    settings = services.resolve(Settings(data_dir=args.data_dir, log_level="WARNING"))
    engine = create_engine(settings)
    sessions = create_sessionmaker(engine)
    tokens = token_config(settings)
    schema, reference = build_schema(), build_schema()
    async with sessions() as db, db.begin():
        admin = (await db.exec(select(User).where(User.email == ADMIN[0]))).one()
        token = (await start_session(db, tokens, admin, datetime.now(UTC))).access_token

    async def run(on: Any = schema) -> Any:
        claims = decode_access_token(tokens, token)
        async with sessions() as db:
            viewer, user = await load_viewer(db, claims)
        context = Context.create(engine, sessions, tokens, viewer=viewer)
        context.loaders.users.prime(user.id, UserRecord.of(user))
        result = await on.execute(QUERY, variable_values={"first": 50}, context_value=context)
        assert not result.errors, result.errors
        return json.dumps({"data": result.data})

    def switch(variant: str) -> None:
        LeanExecutionContext.objects = "leanleaves" not in variant.split("+")
        lean = {"lean", "leanleaves"} & set(variant.split("+"))
        schema.execution_context_class = (
            LeanExecutionContext if lean else StrawberryGraphQLCoreExecutionContext
        )
        engine.sync_engine.pool._pre_ping = "noping" not in variant.split("+")

    try:
        switch("lean")
        assert await run() == await run(reference), "the lean executor must answer the same"
        times: dict[str, list[float]] = {variant: [] for variant in args.variants}
        for variant in args.variants:
            switch(variant)
            for _ in range(30):
                await run()
        for _ in range(args.rounds):
            for variant in args.variants:
                switch(variant)
                started = time.process_time()
                for _ in range(args.per_round):
                    await run()
                times[variant].append((time.process_time() - started) / args.per_round * 1000)
        for variant, values in times.items():
            print(
                f"{variant:12s} CPU per TaskPage (context + execution + JSON): "
                f"min {min(values):.2f} ms, median {statistics.median(values):.2f} ms"
            )
    finally:
        await engine.dispose()
        services.stop_embedded()


def serve(args: argparse.Namespace) -> None:
    import schema.build
    import taskql.db
    from taskql.cli import serve as taskql_serve

    build, create_engine = schema.build.build_schema, taskql.db.create_engine
    if args.lean:

        def lean_schema(extensions: list[Any] | None = None) -> Any:
            built = build(extensions)
            built.execution_context_class = LeanExecutionContext
            return built

        schema.build.build_schema = lean_schema
        import taskql.app

        taskql.app.build_schema = lean_schema  # type: ignore[attr-defined]
    if args.no_pre_ping:

        def engine_without_pre_ping(settings: Any) -> Any:
            engine = create_engine(settings)
            engine.sync_engine.pool._pre_ping = False
            return engine

        taskql.db.create_engine = engine_without_pre_ping
        import taskql.app

        taskql.app.create_engine = engine_without_pre_ping  # type: ignore[attr-defined]
    taskql_serve(host="127.0.0.1", port=args.port, workers=1, migrate=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run_ab = commands.add_parser("ab")
    run_ab.add_argument("--rounds", type=int, default=10)
    run_ab.add_argument("--per-round", type=int, default=40)
    run_ab.add_argument("--data-dir", type=Path, default=ROOT / ".data" / "bench")
    run_ab.add_argument("variants", nargs="*", default=["base", "lean", "noping", "lean+noping"])
    run_serve = commands.add_parser("serve")
    run_serve.add_argument("--port", type=int, default=8098)
    run_serve.add_argument("--lean", action="store_true", default=os.environ.get("BENCH_LEAN") == "1")
    run_serve.add_argument(
        "--no-pre-ping", action="store_true", default=os.environ.get("BENCH_NO_PRE_PING") == "1"
    )
    args = parser.parse_args()
    if args.command == "ab":
        asyncio.run(ab(args))
    else:
        sys.argv = sys.argv[:1]  # typer's command is called directly
        serve(args)


if __name__ == "__main__":
    main()
