"""The application factory: Starlette routes, middleware, lifespan and the GraphQL view."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from strawberry.asgi import GraphQL

from auth.sessions import load_viewer
from auth.tokens import TokenConfig, decode_access_token
from auth.viewer import Viewer
from core.errors import Unauthenticated
from core.settings import Settings
from models import UserRecord
from resolvers.context import Context
from schema.build import build_schema
from taskql import graphiql
from taskql.db import create_engine, create_sessionmaker
from taskql.graphiql import graphiql_asset
from taskql.health import healthz, readyz
from taskql.redis import create_redis

logger = logging.getLogger("taskql.app")


@dataclass
class Resources:
    """What lives as long as the process: born in the lifespan, shared by every request."""

    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    redis: Redis
    tokens: TokenConfig


def token_config(settings: Settings) -> TokenConfig:
    return TokenConfig(
        secret=settings.secret,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        access_ttl=timedelta(seconds=settings.access_token_ttl_seconds),
        refresh_ttl=timedelta(seconds=settings.refresh_token_ttl_seconds),
    )


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated(
            "Send the access token as 'Authorization: Bearer <token>'.", reason="TOKEN_INVALID"
        )
    return token.strip()


class GraphQLView(GraphQL[Context, None]):
    @property
    def graphql_ide_html(self) -> str:
        return graphiql.page()

    async def get_context(self, request: Request, response: Response | None = None) -> Context:  # type: ignore[override]
        resources: Resources = request.app.state.resources
        viewer: Viewer | None = None
        auth_error: Unauthenticated | None = None
        user = None
        try:
            token = bearer_token(request.headers.get("authorization"))
            if token is not None:
                claims = decode_access_token(resources.tokens, token)
                async with resources.sessions() as db:
                    viewer, user = await load_viewer(db, claims)
        except Unauthenticated as error:
            auth_error = error
        context = Context.create(
            resources.engine, resources.sessions, resources.tokens, viewer=viewer, auth_error=auth_error
        )
        if user is not None:
            context.loaders.users.prime(user.id, UserRecord.of(user))
        if response is not None:
            response.headers["X-Request-Id"] = context.request_id
        return context


def create_app(settings: Settings | None = None) -> Starlette:
    """Build the app. ``settings`` must be resolved (``taskql.services.resolve``); by default they are read
    from the environment, where ``serve`` put them for its workers."""
    settings = settings or Settings()
    schema = build_schema()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        engine = create_engine(settings)
        redis = create_redis(settings)
        app.state.resources = Resources(
            settings=settings,
            engine=engine,
            sessions=create_sessionmaker(engine),
            redis=redis,
            tokens=token_config(settings),
        )
        try:
            yield
        finally:
            await redis.aclose()
            await engine.dispose()

    graphql = GraphQLView(
        schema,
        graphql_ide="graphiql" if settings.graphiql_enabled else None,
        allow_queries_via_get=True,
        multipart_uploads_enabled=False,
    )
    middleware = [
        Middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["authorization", "content-type", "apollo-require-preflight", "x-request-id"],
            expose_headers=["x-request-id"],
            max_age=600,
        )
    ]
    routes = [
        Route("/graphql", graphql, methods=["GET", "POST"]),
        Route(graphiql.PREFIX + "{name}", graphiql_asset, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/", lambda _: JSONResponse({"graphql": "/graphql"}), methods=["GET"]),
    ]
    return Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
