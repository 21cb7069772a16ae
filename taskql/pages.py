"""The pages a mail's link opens: confirm an address, choose a new password, download a data export.

Opening a link (GET) spends nothing: mail scanners and link previews open links too. The page holds a form
whose POST carries the token to the same resolver the GraphQL mutation calls (``resolvers.accounts``); what
a write implies is published before the answer, as for any mutation. Plain HTML, no script, so the
production CSP holds. (The web app, when it lands, may take these paths over.)
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qs

import jinja2
import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from core.errors import AppError
from resolvers import accounts
from resolvers.context import Context
from taskql.resources import RESOURCES
from taskql.view import request_context

MAX_FORM_BYTES = 4096
# Nothing but the page and its form, which posts to this server (the other pages' policy forbids forms).
POLICY = "default-src 'none'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer"><title>{{ title }} · taskql</title></head>
<body><main><h1>{{ title }}</h1>
{% if message %}<p role="status">{{ message }}</p>{% endif %}
{% if form %}<form method="post" action="{{ action }}">
<input type="hidden" name="token" value="{{ token }}">
{% if form == "password" %}<p><label for="password">New password (10 to 128 characters)</label><br>
<input id="password" name="password" type="password" autocomplete="new-password"
 minlength="10" maxlength="128" required></p>{% endif %}
<p><button type="submit">{{ button }}</button></p></form>{% endif %}
</main></body></html>
"""
ACTIONS = {
    "/verify-email": ("Confirm your email address", "Confirm", ""),
    "/reset-password": ("Choose a new password", "Set the new password", "password"),
    "/export": ("Download your data", "Download the export (JSON)", ""),
}


@functools.cache
def _template() -> jinja2.Template:
    return jinja2.Environment(autoescape=True).from_string(PAGE)


def _page(path: str, *, message: str = "", token: str = "", form: bool = True, status: int = 200) -> Response:
    title, button, kind = ACTIONS[path]
    html = _template().render(
        title=title,
        message=message,
        action=path,
        token=token,
        button=button,
        form=(kind or "plain") if form else "",
    )
    headers = {"cache-control": "no-store", "content-security-policy": POLICY}
    return HTMLResponse(html, status_code=status, headers=headers)


async def _form(request: Request) -> dict[str, str]:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return {}
    fields = parse_qs(body.decode("utf-8", "replace"), max_num_fields=4)
    return {name: values[0] for name, values in fields.items()}


Done = Callable[[Context, dict[str, str]], Awaitable[Response]]


def _action(path: str, done: Done) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        if request.method == "GET":
            return _page(path, token=request.query_params.get("token", ""))
        fields = await _form(request)
        resources = RESOURCES.of(request.scope)
        context = request_context(resources, request)
        try:
            response = await done(context, fields)
        except AppError as error:  # the resolver's own message, which says what to do
            return _page(path, message=error.message.removeprefix("token: "), form=False, status=400)
        finally:
            await resources.after_writes(context)
        return response

    return endpoint


async def _verified(context: Context, fields: dict[str, str]) -> Response:
    user = await accounts.verify_email(context, token=fields.get("token", ""))
    return _page("/verify-email", message=f"{user.email} is verified. You can close this page.", form=False)


async def _reset(context: Context, fields: dict[str, str]) -> Response:
    try:
        await accounts.reset_password(
            context, token=fields.get("token", ""), new_password=fields.get("password", "")
        )
    except AppError as error:
        if getattr(error, "field", None) == "newPassword":  # the link still works: ask again
            message = error.message.removeprefix("newPassword: ")
            return _page(
                "/reset-password", message=f"That password: {message}", token=fields.get("token", "")
            )
        raise
    return _page(
        "/reset-password",
        message="Your password is changed and every session ended: log in again.",
        form=False,
    )


async def _exported(context: Context, fields: dict[str, str]) -> Response:
    data = await accounts.export_account(context, token=fields.get("token", ""))
    return Response(
        orjson.dumps(data, option=orjson.OPT_INDENT_2),
        media_type="application/json",
        headers={
            "content-disposition": 'attachment; filename="taskql-export.json"',
            "cache-control": "no-store",
        },
    )


ROUTES = [
    Route("/verify-email", _action("/verify-email", _verified), methods=["GET", "POST"]),
    Route("/reset-password", _action("/reset-password", _reset), methods=["GET", "POST"]),
    Route("/export", _action("/export", _exported), methods=["GET", "POST"]),
]
