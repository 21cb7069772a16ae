"""Register, log in, refresh (rotation and reuse), log out, and what the server does with a session after."""

from __future__ import annotations

import asyncio

import asyncpg

from tests.factories import PASSWORD, Account, register
from tests.graphql_client import GraphQLClient
from tests.services import Services


async def test_register_returns_tokens_that_identify_the_new_user(gql: GraphQLClient) -> None:
    account = await register(gql, email="  New.Person@Example.COM ", name="New")
    me = (await gql.run("Me", token=account.token)).ok()["me"]
    assert me["email"] == "new.person@example.com"
    assert me["role"] == "USER"


async def test_an_email_is_unique_whatever_its_case(gql: GraphQLClient, alice: Account) -> None:
    response = await gql.run(
        "Register", {"input": {"email": "ALICE@example.com", "password": PASSWORD, "name": "Other"}}
    )
    assert response.codes == ["BAD_USER_INPUT"]
    assert response.errors[0]["extensions"]["field"] == "input.email"


async def test_login_accepts_the_email_in_any_case(gql: GraphQLClient, alice: Account) -> None:
    data = (await gql.run("Login", {"input": {"email": "Alice@Example.com", "password": PASSWORD}})).ok()
    assert data["login"]["user"]["id"] == alice.id


async def test_a_failed_login_does_not_tell_whether_the_email_exists(
    gql: GraphQLClient, alice: Account
) -> None:
    wrong_password = await gql.run(
        "Login", {"input": {"email": alice.email, "password": "not the password!"}}
    )
    unknown_email = await gql.run("Login", {"input": {"email": "nobody@example.com", "password": PASSWORD}})
    assert wrong_password.codes == unknown_email.codes == ["UNAUTHENTICATED"]
    assert wrong_password.errors[0]["message"] == unknown_email.errors[0]["message"]
    assert wrong_password.errors[0]["extensions"] == unknown_email.errors[0]["extensions"]


async def test_refresh_rotates_the_refresh_token(gql: GraphQLClient, alice: Account) -> None:
    data = (await gql.run("RefreshToken", {"token": alice.refresh_token})).ok()["refreshToken"]
    assert data["refreshToken"] != alice.refresh_token
    assert (await gql.run("Me", token=data["accessToken"])).ok()["me"]["id"] == alice.id
    again = (await gql.run("RefreshToken", {"token": data["refreshToken"]})).ok()["refreshToken"]
    assert again["user"]["id"] == alice.id


async def test_reusing_a_rotated_refresh_token_revokes_the_whole_session(
    gql: GraphQLClient, alice: Account
) -> None:
    rotated = (await gql.run("RefreshToken", {"token": alice.refresh_token})).ok()["refreshToken"]
    reuse = await gql.run("RefreshToken", {"token": alice.refresh_token})
    assert reuse.codes == ["UNAUTHENTICATED"]
    assert reuse.errors[0]["extensions"]["reason"] == "REFRESH_TOKEN_REUSED"
    # The legitimate holder's newer tokens of the same family are dead too.
    assert (await gql.run("RefreshToken", {"token": rotated["refreshToken"]})).codes == ["UNAUTHENTICATED"]
    assert (await gql.run("Me", token=rotated["accessToken"])).codes == ["UNAUTHENTICATED"]


async def test_two_concurrent_refreshes_have_one_winner_and_the_losers_reuse_ends_the_session(
    gql: GraphQLClient, alice: Account
) -> None:
    """Strict on purpose (README, Authentication): the loser presented a consumed token, which revokes the
    session, the winner's new tokens included."""
    refresh_token = alice.refresh_token
    for _ in range(3):  # a fresh session each round
        results = await asyncio.gather(*(gql.run("RefreshToken", {"token": refresh_token}) for _ in range(2)))
        winners = [result for result in results if not result.errors]
        losers = [result for result in results if result.errors]
        assert len(winners) == 1
        assert [loser.errors[0]["extensions"] for loser in losers] == [
            {"code": "UNAUTHENTICATED", "reason": "REFRESH_TOKEN_REUSED"}
        ]
        won = winners[0].data["refreshToken"]
        assert (await gql.run("Me", token=won["accessToken"])).errors[0]["extensions"]["reason"] == (
            "SESSION_REVOKED"
        )
        assert (await gql.run("RefreshToken", {"token": won["refreshToken"]})).codes == ["UNAUTHENTICATED"]
        login = await gql.run("Login", {"input": {"email": alice.email, "password": PASSWORD}})
        refresh_token = login.ok()["login"]["refreshToken"]


async def test_a_reused_refresh_token_ends_its_own_session_only(gql: GraphQLClient, alice: Account) -> None:
    other = (await gql.run("Login", {"input": {"email": alice.email, "password": PASSWORD}})).ok()["login"]
    chain = [alice.refresh_token]
    for _ in range(3):
        chain.append(
            (await gql.run("RefreshToken", {"token": chain[-1]})).ok()["refreshToken"]["refreshToken"]
        )
    newest = (await gql.run("RefreshToken", {"token": chain[-1]})).ok()["refreshToken"]
    reuse = await gql.run("RefreshToken", {"token": chain[1]})  # one from the middle of the family
    assert reuse.errors[0]["extensions"] == {"code": "UNAUTHENTICATED", "reason": "REFRESH_TOKEN_REUSED"}
    for token in (*chain, newest["refreshToken"]):  # every token of the family, consumed or not
        refused = await gql.run("RefreshToken", {"token": token})
        assert refused.errors[0]["extensions"] == {"code": "UNAUTHENTICATED", "reason": "SESSION_REVOKED"}
    for token in (alice.token, newest["accessToken"]):
        assert (await gql.run("Me", token=token)).errors[0]["extensions"]["reason"] == "SESSION_REVOKED"
    # The user's other session is another family: untouched.
    assert (await gql.run("Me", token=other["accessToken"])).ok()["me"]["id"] == alice.id
    assert (await gql.run("RefreshToken", {"token": other["refreshToken"]})).ok()


async def test_an_unknown_refresh_token_is_refused(gql: GraphQLClient, alice: Account) -> None:
    assert (await gql.run("RefreshToken", {"token": "made-up"})).codes == ["UNAUTHENTICATED"]


async def test_an_expired_refresh_token_is_refused(
    gql: GraphQLClient, alice: Account, database: Services
) -> None:
    connection = await asyncpg.connect(database.dsn)
    try:
        await connection.execute("UPDATE refresh_tokens SET expires_at = now() - interval '1 second'")
    finally:
        await connection.close()
    response = await gql.run("RefreshToken", {"token": alice.refresh_token})
    assert response.errors[0]["extensions"]["reason"] == "REFRESH_TOKEN_EXPIRED"


async def test_logout_ends_the_session_and_its_access_token_at_once(
    gql: GraphQLClient, alice: Account
) -> None:
    assert (await gql.run("Logout", {"refreshToken": alice.refresh_token})).ok() == {"logout": True}
    assert (await gql.run("Me", token=alice.token)).codes == ["UNAUTHENTICATED"]
    assert (await gql.run("RefreshToken", {"token": alice.refresh_token})).codes == ["UNAUTHENTICATED"]


async def test_logout_with_only_an_access_token_ends_that_session(gql: GraphQLClient, alice: Account) -> None:
    other = (await gql.run("Login", {"input": {"email": alice.email, "password": PASSWORD}})).ok()["login"]
    assert (await gql.run("Logout", token=alice.token)).ok() == {"logout": True}
    assert (await gql.run("Me", token=alice.token)).codes == ["UNAUTHENTICATED"]
    assert (await gql.run("Me", token=other["accessToken"])).ok()["me"]["id"] == alice.id


async def test_logout_everywhere_ends_every_session_of_the_user(
    gql: GraphQLClient, alice: Account, bob: Account
) -> None:
    other = (await gql.run("Login", {"input": {"email": alice.email, "password": PASSWORD}})).ok()["login"]
    assert (await gql.run("Logout", {"everywhere": True}, token=alice.token)).ok() == {"logout": True}
    assert (await gql.run("Me", token=other["accessToken"])).codes == ["UNAUTHENTICATED"]
    assert (await gql.run("RefreshToken", {"token": other["refreshToken"]})).codes == ["UNAUTHENTICATED"]
    assert (await gql.run("Me", token=bob.token)).ok()["me"]["id"] == bob.id


async def test_logout_cannot_end_another_users_session(
    gql: GraphQLClient, alice: Account, bob: Account
) -> None:
    response = await gql.run("Logout", {"refreshToken": bob.refresh_token}, token=alice.token)
    assert response.codes == ["UNAUTHENTICATED"]
    assert (await gql.run("Me", token=bob.token)).ok()["me"]["id"] == bob.id


async def test_logout_without_any_token_is_unauthenticated(gql: GraphQLClient) -> None:
    assert (await gql.run("Logout")).codes == ["UNAUTHENTICATED"]


async def test_a_consumed_refresh_token_cannot_log_anyone_out(gql: GraphQLClient, alice: Account) -> None:
    fresh = (await gql.run("RefreshToken", {"token": alice.refresh_token})).ok()["refreshToken"]
    for variables in (
        {"refreshToken": alice.refresh_token},
        {"refreshToken": alice.refresh_token, "everywhere": True},
    ):
        assert (await gql.run("Logout", variables)).codes == ["UNAUTHENTICATED"]
    assert (await gql.run("Me", token=fresh["accessToken"])).ok()["me"]["id"] == alice.id


async def test_logout_everywhere_needs_the_accounts_own_access_token(
    gql: GraphQLClient, alice: Account
) -> None:
    response = await gql.run("Logout", {"refreshToken": alice.refresh_token, "everywhere": True})
    assert response.codes == ["UNAUTHENTICATED"]
    assert (await gql.run("Me", token=alice.token)).ok()["me"]["id"] == alice.id


async def test_a_deactivated_user_is_locked_out_on_the_next_request(
    gql: GraphQLClient, admin: Account, alice: Account
) -> None:
    (await gql.run("SetUserActive", {"userId": alice.id, "active": False}, token=admin.token)).ok()
    assert (await gql.run("Me", token=alice.token)).errors[0]["extensions"]["reason"] == "ACCOUNT_DEACTIVATED"
    assert (await gql.run("RefreshToken", {"token": alice.refresh_token})).codes == ["UNAUTHENTICATED"]
    login = await gql.run("Login", {"input": {"email": alice.email, "password": PASSWORD}})
    assert login.codes == ["UNAUTHENTICATED"]


async def test_reactivating_an_account_does_not_revive_its_old_tokens(
    gql: GraphQLClient, admin: Account, alice: Account
) -> None:
    (await gql.run("SetUserActive", {"userId": alice.id, "active": False}, token=admin.token)).ok()
    (await gql.run("SetUserActive", {"userId": alice.id, "active": True}, token=admin.token)).ok()
    assert (await gql.run("Me", token=alice.token)).codes == ["UNAUTHENTICATED"]
    assert (await gql.run("RefreshToken", {"token": alice.refresh_token})).codes == ["UNAUTHENTICATED"]
    assert (await gql.run("Login", {"input": {"email": alice.email, "password": PASSWORD}})).ok()


async def test_an_internationalized_email_logs_in_as_it_was_registered(gql: GraphQLClient) -> None:
    account = await register(gql, email="A\u0308nne@xn--bcher-kva.de")
    assert account.email == "\u00e4nne@b\u00fccher.de"
    for spelling in ("A\u0308nne@xn--bcher-kva.de", "\u00c4nne@B\u00fccher.de"):
        login = await gql.run("Login", {"input": {"email": spelling, "password": PASSWORD}})
        assert login.ok()["login"]["user"]["id"] == account.id, spelling


async def test_a_role_change_takes_effect_on_the_next_request(
    gql: GraphQLClient, admin: Account, alice: Account
) -> None:
    assert (await gql.run("Users", {"first": 5}, token=alice.token)).codes == ["FORBIDDEN"]
    (await gql.run("SetUserRole", {"userId": alice.id, "role": "ADMIN"}, token=admin.token)).ok()
    assert (await gql.run("Users", {"first": 5}, token=alice.token)).ok()["users"]["totalCount"] == 2
    (await gql.run("SetUserRole", {"userId": alice.id, "role": "USER"}, token=admin.token)).ok()
    assert (await gql.run("Users", {"first": 5}, token=alice.token)).codes == ["FORBIDDEN"]


async def test_an_admin_cannot_demote_themselves(gql: GraphQLClient, admin: Account) -> None:
    response = await gql.run("SetUserRole", {"userId": admin.id, "role": "USER"}, token=admin.token)
    assert response.codes == ["BAD_USER_INPUT"]


async def test_passwords_are_stored_as_argon2id_hashes(
    gql: GraphQLClient, alice: Account, database: Services
) -> None:
    connection = await asyncpg.connect(database.dsn)
    try:
        stored = await connection.fetchval("SELECT password_hash FROM users WHERE email = $1", alice.email)
    finally:
        await connection.close()
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert PASSWORD not in stored


async def test_viewer_only_fields_of_a_login_payload_ask_for_the_new_token(
    gql: GraphQLClient, alice: Account
) -> None:
    document = """mutation($input: LoginInput!) {
      login(input: $input) { accessToken user { id taskStats { total } } }
    }"""
    response = await gql.query(document, {"input": {"email": alice.email, "password": PASSWORD}})
    assert response.codes == ["UNAUTHENTICATED"]
    me = await gql.query("{ me { taskStats { total } } }", token=alice.token)
    assert me.ok()["me"]["taskStats"]["total"] == 0


async def test_a_login_racing_a_deactivation_never_yields_a_session_that_outlives_it(
    gql: GraphQLClient, admin: Account, alice: Account
) -> None:
    for _ in range(3):
        login, _deactivated = await asyncio.gather(
            gql.run("Login", {"input": {"email": alice.email, "password": PASSWORD}}),
            gql.run("SetUserActive", {"userId": alice.id, "active": False}, token=admin.token),
        )
        (await gql.run("SetUserActive", {"userId": alice.id, "active": True}, token=admin.token)).ok()
        if not login.errors:  # whichever order they ran in, the session it opened is gone now
            token = login.data["login"]["accessToken"]
            assert (await gql.run("Me", token=token)).codes == ["UNAUTHENTICATED"]


async def test_password_hashing_uses_at_most_its_own_two_threads_however_many_logins_arrive() -> None:
    import threading

    from auth.passwords import HASHING_THREADS, hash_password, verify_password

    hashes = await asyncio.gather(*(hash_password(f"password {i}") for i in range(8)))
    assert (
        await asyncio.gather(*(verify_password(h, f"password {i}") for i, h in enumerate(hashes)))
        == [True] * 8
    )
    hashing = [thread for thread in threading.enumerate() if thread.name.startswith("argon2")]
    assert 1 <= len(hashing) <= HASHING_THREADS
