"""The GraphQL schema: a thin façade of Strawberry types over ``resolvers``. Knows nothing of HTTP.

``build`` puts it together from the roots (``query``, ``mutation``, ``subscription``) and ``types``, with
its ``directives``, its ``extensions`` (the steps every operation goes through), the ``analysis`` of
documents before they run (cost, cache policy), and ``planning`` (compiled completion, and the one module
per library that touches its private attributes).
"""
