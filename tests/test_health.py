import httpx


async def test_healthz_answers(http: httpx.AsyncClient) -> None:
    response = await http.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


async def test_readyz_reports_postgres_at_head_and_redis(http: httpx.AsyncClient) -> None:
    response = await http.get("/readyz")
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ready"
    assert body["checks"]["postgres"]["revision"] == body["checks"]["postgres"]["head"] == "0001"
    assert body["checks"]["redis"] == {"ok": True, "circuit": "closed"}


async def test_graphiql_is_served_to_browsers_in_development(http: httpx.AsyncClient) -> None:
    response = await http.get("/graphql", headers={"accept": "text/html"})
    assert response.status_code == 200
    assert "graphiql" in response.text.lower()
