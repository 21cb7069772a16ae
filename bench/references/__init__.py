"""The honest references of issue 15: the same documents on the same data, without taskql.

``handwritten``: Starlette + asyncpg + orjson and taskql's SQL, no GraphQL (the limit of Python).
``bare_strawberry``: what a competent developer writes with Strawberry, asyncpg and aiodataloader.
``check``: both answer what taskql answers (the same bytes; the same data).
"""
