"""The zero-config default: `python -m taskql serve` with no DATABASE_URL or REDIS_URL starts a real
PostgreSQL and Redis in the data folder, migrates, keeps a generated JWT secret there, and serves."""

from __future__ import annotations

import stat
from pathlib import Path

import httpx

from tests.mailbox import token_in, wait_for_mail
from tests.processes import environment, free_port, start_server, stop, wait_ready

REGISTER = (
    'mutation { register(input: {email: "q@example.com", password: "a quickstart passphrase", name: "Q"})'
    " { accessToken } }"
)


def test_serve_with_no_configuration_runs_on_embedded_servers_and_keeps_its_data(tmp_path: Path) -> None:
    env = environment(DATA_DIR=str(tmp_path / "data"), JOBS_EMBEDDED_WORKER=None)
    port = free_port()
    server = start_server(env, tmp_path, port)
    try:
        wait_ready(server, port)
        base = f"http://127.0.0.1:{port}"
        page = httpx.get(f"{base}/graphql", headers={"accept": "text/html"})
        assert page.status_code == 200
        assert "graphiql" in page.text.lower()
        assert httpx.post(f"{base}/graphql", json={"query": "{ me { id } }"}).json()["data"] == {"me": None}
        token = httpx.post(f"{base}/graphql", json={"query": REGISTER}).json()["data"]["register"][
            "accessToken"
        ]
        # The worker inside serve wrote the verification mail into the mailbox folder; its link verifies.
        mail = wait_for_mail(tmp_path / "data" / "mail")
        assert mail["To"] == "q@example.com"
        verify = httpx.post(
            f"{base}/graphql",
            json={
                "query": "mutation($t: String!) { verifyEmail(token: $t) { email emailVerified } }",
                "variables": {"t": token_in(mail)},
            },
        )
        assert verify.json()["data"] == {"verifyEmail": {"email": "q@example.com", "emailVerified": True}}
    finally:
        stop(server)
    assert not running_in(tmp_path), "the embedded servers must stop with taskql"
    secret = tmp_path / "data" / "jwt_secret"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert len(secret.read_text().strip()) >= 32

    # A second start finds the same database and secret: the token issued before still works.
    server = start_server(env, tmp_path, port)
    try:
        wait_ready(server, port)
        me = httpx.post(
            f"http://127.0.0.1:{port}/graphql",
            json={"query": "{ me { email } }"},
            headers={"authorization": f"Bearer {token}"},
        )
        assert me.json()["data"] == {"me": {"email": "q@example.com"}}
    finally:
        stop(server)
    assert not running_in(tmp_path)


def running_in(folder: Path) -> list[str]:
    """Live processes whose command line or working directory is in ``folder``: PostgreSQL names its data
    folder in its arguments; Redis runs in its data folder (its socket lives elsewhere)."""
    commands = []
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            cwd = str((entry / "cwd").resolve())
        except (OSError, ValueError):
            continue
        if str(folder) in command or cwd.startswith(str(folder)):
            commands.append(command)
    return commands
