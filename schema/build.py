"""Build the schema once: types, `@auth` enforcement, error codes, parse and validation caches."""

from __future__ import annotations

from typing import Any

from strawberry.extensions import ParserCache, SchemaExtension, ValidationCache
from strawberry.extensions.runner import SchemaExtensionsRunner
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.exceptions import InvalidOperationTypeError
from strawberry.types import ExecutionContext, ExecutionResult
from strawberry.types.graphql import OperationType

from graphql import GraphQLError
from schema.analysis.analysed import AnalysedSchema
from schema.directives.auth import enforce_auth_directives
from schema.extensions.after_writes import AfterWrites
from schema.extensions.cache_policy import CachePolicyExtension
from schema.extensions.conceal_schema import ConcealSchema, concealed
from schema.extensions.error_codes import ErrorCodes, coded, is_coded
from schema.extensions.query_limits import Limits, QueryLimits
from schema.extensions.route_reads import RouteReads
from schema.extensions.single_operation import SingleOperation
from schema.extensions.write_authorization import WriteAuthorization
from schema.mutation import Mutation
from schema.planning.execution import GeneralExecutionContext, PlannedExecutionContext
from schema.planning.strawberry_compat import ExtensionsRunner, graphql_schema_of
from schema.query import Query
from schema.subscription import Subscription
from schema.types.scalars import SCALAR_MAP
from schema.types.task import Task
from schema.types.user import User

SUBSCRIPTION_NOT_EXECUTED = (
    "A subscription is not answered as a request: subscribe over WebSocket at /graphql "
    "(graphql-transport-ws)."
)


class TaskqlSchema(AnalysedSchema):
    limits: Limits

    async def execute(self, *args: Any, **kwargs: Any) -> ExecutionResult:
        # graphql-core's execute() would run a subscription's resolver as a query's, and its async generator
        # is no value (a masked error, logged as a bug). Subscriptions only go through stream()/subscribe().
        allowed = kwargs.get("allowed_operation_types") or set(OperationType)
        kwargs["allowed_operation_types"] = set(allowed) - {OperationType.SUBSCRIPTION}
        try:
            result = await super().execute(*args, **kwargs)
        except InvalidOperationTypeError as error:
            if error.operation_type is not OperationType.SUBSCRIPTION:
                raise
            return ExecutionResult(
                data=None,
                errors=[GraphQLError(SUBSCRIPTION_NOT_EXECUTED, extensions={"code": "BAD_REQUEST"})],
            )
        # Errors raised where no extension hook runs (a syntax error surfaces from ParserCache's parsing
        # hook, outside Strawberry's operation hooks) still get their code here.
        if result.errors and not all(map(is_coded, result.errors)):
            context = kwargs.get("context_value")
            result.errors = [
                error if is_coded(error) else coded(error, context=context) for error in result.errors
            ]
        return result

    def create_extensions_runner(
        self, execution_context: ExecutionContext, extensions: list[SchemaExtension]
    ) -> SchemaExtensionsRunner:
        return ExtensionsRunner(execution_context=execution_context, extensions=extensions)

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """Logging happens in ``ErrorCodes``: client mistakes are not logged, bugs are, once, in full."""


def build_schema(
    extensions: list[Any] | None = None,
    *,
    introspection: bool = True,
    limits: Limits | None = None,
    planned: bool = True,
) -> TaskqlSchema:
    """The schema; with ``introspection`` off, it keeps itself to itself
    (``schema.extensions.conceal_schema``); with ``planned`` off (``PLANNED_COMPLETION=false``), graphql-core
    completes every field itself instead of the compiled plans (``schema.planning``): the same answers."""
    limits = limits or Limits()
    executor = PlannedExecutionContext if planned else GeneralExecutionContext
    schema = TaskqlSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        types=[Task, User],
        config=StrawberryConfig(scalar_map=SCALAR_MAP),
        execution_context_class=executor if introspection else concealed(executor),
        # Classes, not instances (Strawberry 0.34x); the caches skip re-parsing and re-validating a document
        # seen before, which is most of the fixed cost of a request.
        extensions=[
            ErrorCodes,
            AfterWrites,
            QueryLimits.factory(limits),
            CachePolicyExtension,
            *(() if introspection else (ConcealSchema,)),
            WriteAuthorization,  # after the cost is charged (to the viewer as sent), before any resolver
            RouteReads,
            lambda: ParserCache(maxsize=1024),
            lambda: ValidationCache(maxsize=1024),
            SingleOperation,  # after ValidationCache: it adds to the errors that one sets
            *(extensions or []),
        ],
    )
    enforce_auth_directives(graphql_schema_of(schema))
    schema.limits = limits
    return schema


def sdl() -> str:
    return build_schema().as_str() + "\n"
