"""The GraphQL schema: a thin façade of Strawberry types over ``resolvers``. Knows nothing of HTTP."""
