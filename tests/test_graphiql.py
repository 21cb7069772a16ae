"""GraphiQL works offline: its assets come from taskql, match the page's SRI hashes, and it runs a query
in a real browser (Debian's chromium) with every non-local request blocked."""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path
from urllib.parse import quote

import httpx
from playwright.async_api import Route

from tests.browser import chromium, needs_chromium
from tests.processes import TEST_SECRET, environment, free_port, start_server, stop, wait_ready
from tests.services import Services

ASSET = re.compile(r'(?:src|href)="([^"]+)"\s+integrity="(sha384-[^"]+)"')


async def test_the_page_loads_every_script_and_style_from_taskql(http: httpx.AsyncClient) -> None:
    page = (await http.get("/graphql", headers={"accept": "text/html"})).text
    assets = ASSET.findall(page)
    assert len(assets) == 7
    assert all(url.startswith("/graphiql/") for url, _ in assets), assets
    assert "unpkg.com" not in page


async def test_every_asset_matches_the_integrity_hash_the_page_declares(http: httpx.AsyncClient) -> None:
    page = (await http.get("/graphql", headers={"accept": "text/html"})).text
    for url, integrity in ASSET.findall(page):
        plain = await http.get(url, headers={"accept-encoding": "identity"})
        assert plain.status_code == 200, url
        assert "sha384-" + base64.b64encode(hashlib.sha384(plain.content).digest()).decode() == integrity, url
        assert "immutable" in plain.headers["cache-control"]


async def test_the_big_bundle_travels_gzipped_to_browsers_that_accept_it(http: httpx.AsyncClient) -> None:
    url = "/graphiql/graphiql-3.8.3.min.js"
    raw = await http.get(url, headers={"accept-encoding": "gzip"})
    assert raw.headers["content-encoding"] == "gzip"
    assert len(raw.content) > 3_000_000  # httpx decoded it: the full bundle arrived
    assert (await http.get("/graphiql/../settings.py")).status_code == 404


@needs_chromium
async def test_graphiql_runs_a_query_in_a_real_browser_without_network(
    database: Services, tmp_path: Path
) -> None:
    env = environment(
        DATABASE_URL=database.database_url, REDIS_URL=database.redis_url, JWT_SECRET=TEST_SECRET
    )
    port = free_port()
    server = start_server(env, tmp_path, port)
    blocked: list[str] = []
    console: list[str] = []

    async def only_local(route: Route) -> None:
        if route.request.url.startswith(f"http://127.0.0.1:{port}/"):
            await route.continue_()
        else:
            blocked.append(route.request.url)
            await route.abort()

    try:
        wait_ready(server, port)
        async with chromium() as browser:
            page = await browser.new_page()
            # The page's Content-Security-Policy must allow everything GraphiQL does, and the browser says
            # so on the console when it does not.
            page.on("console", lambda message: console.append(message.text))
            await page.route("**/*", only_local)
            await page.goto(f"http://127.0.0.1:{port}/graphql?q={quote('{ me { id } }')}")
            await page.locator(".graphiql-execute-button").click()
            # A locator, not wait_for_function: the page's CSP forbids evaluating strings as scripts.
            await page.locator(".result-window", has_text='"me": null').wait_for()
            result = await page.locator(".result-window").inner_text()
            await page.screenshot(path=str(tmp_path / "graphiql.png"))
    finally:
        stop(server)
    assert '"me": null' in result
    assert blocked == []
    assert not [line for line in console if "Content Security Policy" in line], console
