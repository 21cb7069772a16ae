"""A Strawberry schema that knows, before a document runs, what it will cost and how long its answer may
be cached: the extensions find both on the schema an operation runs on."""

from __future__ import annotations

from typing import Any

import strawberry

from resolvers.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from schema.analysis.cache_policies import CachePolicies
from schema.analysis.cost import CostModel
from schema.planning.strawberry_compat import graphql_schema_of


class AnalysedSchema(strawberry.Schema):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        graphql_schema = graphql_schema_of(self)
        self.costs = CostModel(
            graphql_schema, default_page_size=DEFAULT_PAGE_SIZE, max_page_size=MAX_PAGE_SIZE
        )
        self.cache_policies = CachePolicies(graphql_schema)
