"""Accounts people can recover and manage, end to end: a live taskql (its worker inside), a real SMTP server
(aiosmtpd) that the mails arrive at, and the links in them followed as a person would."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.browser import chromium, needs_chromium
from tests.factories import PASSWORD
from tests.graphql_client import GraphQLClient
from tests.mailbox import Sink, link_in, smtp_sink, text_of, token_in
from tests.processes import servers_on
from tests.services import Services
from tests.ws_client import Subscriber

NEW_PASSWORD = "a brand new passphrase"


@dataclass
class Live:
    base: str
    sink: Sink
    gql: GraphQLClient
    http: httpx.AsyncClient
    dsn: str

    async def register(self, email: str, name: str = "Person") -> dict[str, str]:
        data = (
            await self.gql.run("Register", {"input": {"email": email, "password": PASSWORD, "name": name}})
        ).ok()
        return {key: data["register"][key] for key in ("accessToken", "refreshToken")} | {
            "id": data["register"]["user"]["id"]
        }

    async def login(self, email: str, password: str = PASSWORD) -> dict[str, str]:
        payload = (await self.gql.run("Login", {"input": {"email": email, "password": password}})).ok()
        return dict(payload["login"])

    async def queue_is_empty(self) -> None:
        """Wait until every job ran (the worker deletes a job once done): a condition, with a deadline."""
        connection = await asyncpg.connect(self.dsn)
        try:
            for _ in range(600):
                if not await connection.fetchval("SELECT count(*) FROM pgqueuer WHERE status <> 'failed'"):
                    return
                await _pause()
        finally:
            await connection.close()
        raise AssertionError("jobs still queued")


async def _pause() -> None:
    import asyncio

    await asyncio.sleep(0.05)


@pytest.fixture(scope="module")
async def sink_and_url() -> AsyncIterator[tuple[Sink, str]]:
    with smtp_sink() as found:  # made in the test loop: the sink hands messages over to it
        yield found


@contextlib.contextmanager
def live_server(database: Services, smtp_url: str, folder: Path, **settings: str) -> Iterator[str]:
    """One taskql process with its worker, sending mail to ``smtp_url``; links start http://taskql.example."""
    values = {
        "JOBS_EMBEDDED_WORKER": "true",
        "SMTP_URL": smtp_url,
        "PUBLIC_URL": "http://taskql.example",
        "MAIL_FROM": "taskql <robot@taskql.example>",
        **settings,
    }
    with servers_on(database.database_url, database.redis_url, folder, 1, **values) as bases:
        yield bases[0]


@pytest.fixture(scope="module")
def server(
    database: Services, sink_and_url: tuple[Sink, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    with live_server(database, sink_and_url[1], tmp_path_factory.mktemp("accounts")) as base:
        yield base


@pytest.fixture
async def live(server: str, sink_and_url: tuple[Sink, str], database: Services) -> AsyncIterator[Live]:
    sink, _ = sink_and_url
    while not sink.messages.empty():  # what an earlier test left behind
        sink.messages.get_nowait()
    sink.received.clear()
    async with httpx.AsyncClient(base_url=server) as http:
        yield Live(server, sink, GraphQLClient(http), http, database.dsn)


def local(link: str, live: Live) -> str:
    """A link of the mail, on the server under test (PUBLIC_URL names the public address)."""
    assert link.startswith("http://taskql.example/"), link
    return link.removeprefix("http://taskql.example")


async def test_register_mails_a_link_whose_page_verifies_the_address_once(live: Live) -> None:
    account = await live.register("vera@example.com", "Vera")
    mail = await live.sink.next("vera@example.com")
    assert mail["From"] == "taskql <robot@taskql.example>"
    assert mail["Message-ID"].endswith("@taskql.example>")
    assert "Vera" in text_of(mail)
    me = (await live.gql.run("Me", token=account["accessToken"])).ok()["me"]
    assert (await live.gql.query("{ me { emailVerified } }", token=account["accessToken"])).ok() == {
        "me": {"emailVerified": False}
    }

    path = local(link_in(mail), live)
    opened = await live.http.get(path)  # a scanner opening the link spends nothing
    assert opened.status_code == 200
    assert "<form" in opened.text
    assert "script" not in opened.text
    confirmed = await live.http.post("/verify-email", data={"token": token_in(mail)})
    assert confirmed.status_code == 200
    assert "vera@example.com is verified" in confirmed.text
    assert (await live.gql.query("{ me { emailVerified } }", token=account["accessToken"])).ok() == {
        "me": {"emailVerified": True}
    }
    again = await live.gql.run("VerifyEmail", {"token": token_in(mail)})
    assert again.codes == ["BAD_USER_INPUT"]
    assert again.errors[0]["extensions"]["reason"] == "TOKEN_INVALID"
    assert me["email"] == "vera@example.com"


async def test_a_reset_mail_sets_the_password_ends_every_session_and_closes_their_sockets(live: Live) -> None:
    account = await live.register("rosa@example.com")
    await live.sink.next("rosa@example.com")  # the verification mail
    socket = await Subscriber.open(
        live.base.replace("http", "ws") + "/graphql", {"authorization": f"Bearer {account['accessToken']}"}
    )
    await socket.subscribe()
    assert (await live.gql.run("RequestPasswordReset", {"email": "ROSA@example.com"})).ok() == {
        "requestPasswordReset": True
    }
    mail = await live.sink.next("rosa@example.com")
    assert mail["X-Taskql-Mail"] == "password_reset"

    weak = await live.gql.run("ResetPassword", {"token": token_in(mail), "newPassword": "short"})
    assert weak.codes == ["BAD_USER_INPUT"]
    assert weak.errors[0]["extensions"]["field"] == "newPassword"
    done = await live.gql.run("ResetPassword", {"token": token_in(mail), "newPassword": NEW_PASSWORD})
    assert done.ok() == {"resetPassword": True}  # the weak try left the link working

    assert (await socket.closed()).code == 4403
    old = await live.gql.query("{ me { id } }", token=account["accessToken"])
    assert old.codes == ["UNAUTHENTICATED"]
    refreshed = await live.gql.run("RefreshToken", {"token": account["refreshToken"]})
    assert refreshed.codes == ["UNAUTHENTICATED"]
    notice = await live.sink.next("rosa@example.com")
    assert notice["X-Taskql-Mail"] == "password_changed"
    assert (await live.login("rosa@example.com", NEW_PASSWORD))["accessToken"]
    reused = await live.gql.run(
        "ResetPassword", {"token": token_in(mail), "newPassword": "yet another passphrase"}
    )
    assert reused.codes == ["BAD_USER_INPUT"]


async def test_a_reset_for_an_unknown_address_answers_the_same_and_mails_no_one(live: Live) -> None:
    known = await live.gql.run("RequestPasswordReset", {"email": "nobody@example.com"})
    assert known.ok() == {"requestPasswordReset": True}
    await live.queue_is_empty()
    assert live.sink.messages.empty()
    assert live.sink.received == []


async def test_changing_the_email_mails_both_addresses_and_takes_effect_when_verified(live: Live) -> None:
    account = await live.register("old@example.com", "Mover")
    await live.sink.next("old@example.com")
    wrong = await live.gql.run(
        "ChangeEmail", {"newEmail": "new@example.com", "password": "not it"}, token=account["accessToken"]
    )
    assert wrong.codes == ["BAD_USER_INPUT"]
    assert wrong.errors[0]["extensions"]["reason"] == "WRONG_PASSWORD"
    asked = await live.gql.run(
        "ChangeEmail", {"newEmail": "New@Example.com", "password": PASSWORD}, token=account["accessToken"]
    )
    assert asked.ok() == {"changeEmail": True}
    notice = await live.sink.next("old@example.com")
    assert notice["X-Taskql-Mail"] == "email_change_requested"
    assert "new@example.com" in text_of(notice)
    verification = await live.sink.next("new@example.com")
    me = await live.gql.query("{ me { email } }", token=account["accessToken"])
    assert me.ok() == {"me": {"email": "old@example.com"}}  # not before the new address is proved

    verified = await live.gql.run("VerifyEmail", {"token": token_in(verification)})
    assert verified.ok()["verifyEmail"] == {
        "id": account["id"],
        "email": "new@example.com",
        "emailVerified": True,
    }
    me = await live.gql.query("{ me { email } }", token=account["accessToken"])
    assert me.ok() == {"me": {"email": "new@example.com"}}  # the cached answer went with the change
    assert (await live.login("new@example.com"))["accessToken"]
    old_login = await live.gql.run("Login", {"input": {"email": "old@example.com", "password": PASSWORD}})
    assert old_login.codes == ["UNAUTHENTICATED"]


async def test_the_export_link_downloads_the_account_and_everything_of_it_once(live: Live) -> None:
    account = await live.register("exa@example.com", "Exa")
    await live.sink.next("exa@example.com")
    titles = {f"task {n}" for n in range(3)}
    for title in titles:
        (await live.gql.run("CreateTask", {"input": {"title": title}}, token=account["accessToken"])).ok()
    hook = {"input": {"url": "https://93.184.215.14/exa", "events": ["TASK_DELETED"], "description": "CI"}}
    created = await live.gql.run("CreateWebhook", hook, token=account["accessToken"])
    secret = created.ok()["createWebhook"]["secret"]
    zone = {"input": {"timezone": "Europe/Paris"}}
    (await live.gql.run("UpdateNotificationSettings", zone, token=account["accessToken"])).ok()
    project = await live.gql.run("CreateProject", {"input": {"name": "Exa's"}}, token=account["accessToken"])
    project_id = project.ok()["createProject"]["id"]
    shared = {"input": {"title": "in the project", "projectId": project_id}}
    (await live.gql.run("CreateTask", shared, token=account["accessToken"])).ok()
    titles.add("in the project")
    assert (await live.gql.run("RequestDataExport", token=account["accessToken"])).ok() == {
        "requestDataExport": True
    }
    mail = await live.sink.next("exa@example.com")
    assert mail["X-Taskql-Mail"] == "data_export"
    page = await live.http.get(local(link_in(mail), live))
    assert page.status_code == 200
    assert "Download" in page.text
    download = await live.http.post("/export", data={"token": token_in(mail)})
    assert download.status_code == 200
    assert download.headers["content-disposition"] == 'attachment; filename="taskql-export.json"'
    export = download.json()
    assert export["account"]["email"] == "exa@example.com"
    assert export["account"]["id"] == account["id"]
    assert {task["title"] for task in export["tasks"]} == titles
    assert export["projects"] == [{"id": project_id, "name": "Exa's", "role": "OWNER"}]
    assert export["notificationSettings"]["timezone"] == "Europe/Paris"
    (webhook,) = export["webhooks"]
    assert (webhook["url"], webhook["events"], webhook["description"]) == (
        "https://93.184.215.14/exa", ["TASK_DELETED"], "CI",
    )  # fmt: skip
    assert secret not in download.text  # a secret is shown once, at creation
    again = await live.http.post("/export", data={"token": token_in(mail)})
    assert again.status_code == 400
    assert "exa@example.com" not in again.text


async def test_deleting_the_account_removes_its_tasks_tokens_and_cached_answers(live: Live) -> None:
    admin = await live.register("boss@example.com", "Boss")
    connection = await asyncpg.connect(live.dsn)
    try:
        await connection.execute("UPDATE users SET role = 'ADMIN' WHERE email = 'boss@example.com'")
        account = await live.register("gone@example.com", "Gone")
        (
            await live.gql.run("CreateTask", {"input": {"title": "soon gone"}}, token=account["accessToken"])
        ).ok()
        listed = "{ users(first: 10) { edges { node { email } } } }"
        before = (await live.gql.query(listed, token=admin["accessToken"])).ok()  # cached for the admin
        assert "gone@example.com" in str(before)
        wrong = await live.gql.run("DeleteAccount", {"password": "not it"}, token=account["accessToken"])
        assert wrong.codes == ["BAD_USER_INPUT"]
        deleted = await live.gql.run("DeleteAccount", {"password": PASSWORD}, token=account["accessToken"])
        assert deleted.ok() == {"deleteAccount": True}

        assert (await live.gql.query("{ me { id } }", token=account["accessToken"])).codes == [
            "UNAUTHENTICATED"
        ]
        refreshed = await live.gql.run("RefreshToken", {"token": account["refreshToken"]})
        assert refreshed.codes == ["UNAUTHENTICATED"]
        after = (await live.gql.query(listed, token=admin["accessToken"])).ok()
        assert "gone@example.com" not in str(after)
        user_id = account["id"]
        assert await connection.fetchval("SELECT count(*) FROM tasks t JOIN users u ON u.id = t.owner_id "
                                         "WHERE u.email = 'gone@example.com'") == 0  # fmt: skip
        assert await connection.fetchval("SELECT count(*) FROM users WHERE email = 'gone@example.com'") == 0
        assert await connection.fetchval("SELECT count(*) FROM auth_sessions s WHERE NOT EXISTS "
                                         "(SELECT 1 FROM users u WHERE u.id = s.user_id)") == 0  # fmt: skip
        assert user_id
    finally:
        await connection.close()
    farewell = await live.sink.next("gone@example.com")
    while farewell["X-Taskql-Mail"] != "account_deleted":
        farewell = await live.sink.next("gone@example.com")
    assert "Gone" in text_of(farewell)
    last_admin = await live.gql.run("DeleteAccount", {"password": PASSWORD}, token=admin["accessToken"])
    assert last_admin.errors[0]["extensions"]["reason"] == "LAST_ADMIN"


async def test_sessions_list_the_viewers_logins_and_one_can_be_ended(live: Live) -> None:
    first = await live.register("sam@example.com")
    second = await live.login("sam@example.com")
    other = await live.register("other@example.com")
    listed = (await live.gql.run("Sessions", token=first["accessToken"])).ok()["sessions"]
    assert len(listed) == 2
    assert [session["current"] for session in listed].count(True) == 1
    assert all(session["userAgent"].startswith("python-httpx") for session in listed)
    theirs = (await live.gql.run("Sessions", token=other["accessToken"])).ok()["sessions"]
    refused = await live.gql.run("RevokeSession", {"id": theirs[0]["id"]}, token=first["accessToken"])
    assert refused.codes == ["NOT_FOUND"]

    second_id = next(session["id"] for session in listed if not session["current"])
    ended = await live.gql.run("RevokeSession", {"id": second_id}, token=first["accessToken"])
    assert ended.ok() == {"revokeSession": True}
    assert (await live.gql.query("{ me { id } }", token=second["accessToken"])).codes == ["UNAUTHENTICATED"]
    remaining = (await live.gql.run("Sessions", token=first["accessToken"])).ok()["sessions"]
    assert [session["current"] for session in remaining] == [True]


async def test_changing_the_password_needs_the_current_one_and_replaces_every_session(live: Live) -> None:
    account = await live.register("cara@example.com")
    await live.sink.next("cara@example.com")
    wrong = await live.gql.run(
        "ChangePassword",
        {"currentPassword": "nope", "newPassword": NEW_PASSWORD},
        token=account["accessToken"],
    )
    assert wrong.codes == ["BAD_USER_INPUT"]
    assert wrong.errors[0]["extensions"]["field"] == "currentPassword"
    changed = await live.gql.run(
        "ChangePassword",
        {"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD},
        token=account["accessToken"],
    )
    pair = changed.ok()["changePassword"]
    assert (await live.gql.query("{ me { id } }", token=account["accessToken"])).codes == ["UNAUTHENTICATED"]
    assert (await live.gql.query("{ me { email } }", token=pair["accessToken"])).ok() == {
        "me": {"email": "cara@example.com"}
    }
    assert (await live.sink.next("cara@example.com"))["X-Taskql-Mail"] == "password_changed"
    renamed = await live.gql.run(
        "UpdateProfile", {"input": {"name": "  Cara B  "}}, token=pair["accessToken"]
    )
    assert renamed.ok()["updateProfile"]["name"] == "Cara B"
    blank = await live.gql.run("UpdateProfile", {"input": {"name": "  "}}, token=pair["accessToken"])
    assert blank.codes == ["BAD_USER_INPUT"]
    assert blank.errors[0]["extensions"]["field"] == "input.name"


async def test_an_admin_can_mail_a_user_a_reset_link(live: Live) -> None:
    admin = await live.register("root@example.com")
    user = await live.register("lost@example.com")
    connection = await asyncpg.connect(live.dsn)
    try:
        await connection.execute("UPDATE users SET role = 'ADMIN' WHERE email = 'root@example.com'")
    finally:
        await connection.close()
    sent = await live.gql.run("SendPasswordReset", {"userId": user["id"]}, token=admin["accessToken"])
    assert sent.ok() == {"sendPasswordReset": True}
    mail = await live.sink.next("lost@example.com")
    while mail["X-Taskql-Mail"] != "password_reset":
        mail = await live.sink.next("lost@example.com")
    assert (await live.gql.run("ResetPassword", {"token": token_in(mail), "newPassword": NEW_PASSWORD})).ok()


@pytest.fixture(scope="module")
def strict_server(
    database: Services, sink_and_url: tuple[Sink, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("strict")
    with live_server(database, sink_and_url[1], folder, REQUIRE_VERIFIED_EMAIL="true") as base:
        yield base


async def test_with_verified_email_required_register_tells_nothing_and_login_waits_for_the_link(
    strict_server: str, live: Live
) -> None:
    async with httpx.AsyncClient(base_url=strict_server) as http:
        gql = GraphQLClient(http)
        fresh = {"input": {"email": "ann@example.com", "password": PASSWORD, "name": "Ann"}}
        first = await gql.run("Register", fresh)
        taken = await gql.run("Register", fresh | {"input": fresh["input"] | {"name": "Mallory"}})
        assert first.codes == taken.codes == ["EMAIL_NOT_VERIFIED"]
        assert first.errors[0]["message"] == taken.errors[0]["message"]
        assert first.data == taken.data
        verification = await live.sink.next("ann@example.com")
        note = await live.sink.next("ann@example.com")
        kinds = {verification["X-Taskql-Mail"], note["X-Taskql-Mail"]}
        assert kinds == {"verify_email", "address_in_use"}
        if verification["X-Taskql-Mail"] != "verify_email":
            verification = note

        login = {"input": {"email": "ann@example.com", "password": PASSWORD}}
        refused = await gql.run("Login", login)
        assert refused.codes == ["EMAIL_NOT_VERIFIED"]
        assert (await live.sink.next("ann@example.com"))["X-Taskql-Mail"] == "verify_email"  # a new link
        assert (await gql.run("VerifyEmail", {"token": token_in(verification)})).ok()
        assert (await gql.run("Login", login)).ok()["login"]["accessToken"]


@needs_chromium
async def test_a_person_resets_the_password_from_the_mail_in_a_real_browser(
    live: Live, tmp_path: Path
) -> None:
    await live.register("web@example.com")
    await live.sink.next("web@example.com")
    (await live.gql.run("RequestPasswordReset", {"email": "web@example.com"})).ok()
    link = live.base + local(link_in(await live.sink.next("web@example.com")), live)
    console: list[str] = []
    async with chromium() as browser:
        page = await browser.new_page()
        page.on("console", lambda message: console.append(message.text))
        await page.goto(link)
        await page.get_by_label("New password").fill("short")
        await page.get_by_role("button", name="Set the new password").click()
        # The browser's own check (minlength) keeps the form; past it, the server's answer.
        await page.get_by_label("New password").fill(NEW_PASSWORD)
        await page.get_by_role("button", name="Set the new password").click()
        await page.get_by_role("status").wait_for()
        status = await page.get_by_role("status").inner_text()
        await page.screenshot(path=str(tmp_path / "reset-password.png"))
    assert "Your password is changed" in status
    assert not [line for line in console if "Content Security Policy" in line], console
    assert (await live.login("web@example.com", NEW_PASSWORD))["accessToken"]


async def test_mails_asked_for_an_address_are_counted_and_refused_past_the_limit(live: Live) -> None:
    for _ in range(5):  # ACCOUNT_MAILS_PER_ACCOUNT
        assert (await live.gql.run("RequestPasswordReset", {"email": "spam@example.com"})).ok()
    refused = await live.gql.run("RequestPasswordReset", {"email": "spam@example.com"})
    assert refused.codes == ["RATE_LIMITED"]
    assert refused.errors[0]["extensions"]["scope"] == "ACCOUNT"
    assert (await live.gql.run("RequestPasswordReset", {"email": "other-spam@example.com"})).ok()


async def test_an_expired_link_is_refused_like_a_used_one_and_changes_nothing(live: Live) -> None:
    account = await live.register("late@example.com")
    mail = await live.sink.next("late@example.com")
    connection = await asyncpg.connect(live.dsn)
    try:
        await connection.execute("UPDATE account_tokens SET expires_at = now() - interval '1 second'")
        refused = await live.gql.run("VerifyEmail", {"token": token_in(mail)})
        assert refused.codes == ["BAD_USER_INPUT"]
        assert refused.errors[0]["extensions"]["reason"] == "TOKEN_INVALID"
        assert refused.errors[0]["message"] == (
            "token: This verification link is invalid, used or expired: ask for a new one."
        )
        assert await connection.fetchval("SELECT count(*) FROM account_tokens WHERE used_at IS NOT NULL") == 0
    finally:
        await connection.close()
    me = await live.gql.query("{ me { emailVerified } }", token=account["accessToken"])
    assert me.ok() == {"me": {"emailVerified": False}}


async def test_deleting_the_account_closes_its_sockets(live: Live) -> None:
    account = await live.register("leaving@example.com")
    socket = await Subscriber.open(
        live.base.replace("http", "ws") + "/graphql", {"authorization": f"Bearer {account['accessToken']}"}
    )
    await socket.subscribe()
    assert (await live.gql.run("DeleteAccount", {"password": PASSWORD}, token=account["accessToken"])).ok()
    assert (await socket.closed()).code == 4403
