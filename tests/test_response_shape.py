"""The response checker the fuzz relies on finds what it is meant to find (a checker that accepts
everything would make the fuzz pass on any server)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from core.ids import encode_id
from graphql import build_schema, parse
from tests.response_shape import shape_problems

SCHEMA = build_schema(
    """
    scalar DateTime
    interface Node { id: ID! }
    type Task implements Node { id: ID! title: String! due: DateTime count: Int tags: [String!]! }
    type User implements Node { id: ID! name: String role: Role! }
    enum Role { USER ADMIN }
    type Query { task(id: ID!): Task node(id: ID!): Node tasks: [Task!]! }
    """
)
TASK_ID = encode_id("Task", uuid.UUID(int=1))
USER_ID = encode_id("User", uuid.UUID(int=2))
NOT_FOUND = {"message": "No Task.", "path": ["task"], "extensions": {"code": "NOT_FOUND"}}


def problems(document: str, body: Any) -> list[str]:
    return shape_problems(SCHEMA, parse(document), body)


def test_a_fitting_answer_has_no_problem() -> None:
    body = {"data": {"task": {"id": TASK_ID, "title": "t", "due": "2030-01-31T17:00:00Z", "tags": []}}}
    assert problems("{ task(id: 1) { id title due tags } }", body) == []


def test_a_null_propagated_to_a_nullable_field_with_its_error_fits() -> None:
    assert problems("{ task(id: 1) { title } }", {"data": {"task": None}, "errors": [NOT_FOUND]}) == []


@pytest.mark.parametrize(
    ("document", "body", "finding"),
    [
        ("{ task(id: 1) { title } }", {"data": {"task": {"title": None}}}, "null for the non-null"),
        ("{ task(id: 1) { title } }", {"data": {"task": {}}}, "where the selection asks for"),
        ("{ task(id: 1) { title } }", {"data": {"task": {"title": "t", "x": 1}}}, "asks for"),
        ("{ task(id: 1) { title count } }", {"data": {"task": {"count": 1, "title": "t"}}}, "asks for"),
        ("{ task(id: 1) { count } }", {"data": {"task": {"count": 2**31}}}, "is not a Int"),
        ("{ task(id: 1) { count } }", {"data": {"task": {"count": True}}}, "is not a Int"),
        ("{ task(id: 1) { due } }", {"data": {"task": {"due": "2030-01-31T17:00:00+01:00"}}}, "DateTime"),
        ("{ task(id: 1) { tags } }", {"data": {"task": {"tags": [None]}}}, "null for the non-null"),
        ("{ task(id: 1) { id } }", {"data": {"task": {"id": USER_ID}}}, "does not decode"),
        ("{ node(id: 1) { ... on User { role } } }", {"data": {"node": {"role": "ROOT"}}}, "not a value"),
        ("{ node(id: 1) { id } }", {"data": {"node": {"id": 1}}}, "is not a ID"),
        ("{ tasks { title } }", {"data": None}, "no data and no error"),
        ("{ tasks { title } }", {"data": {"tasks": []}, "errors": []}, "non-empty list"),
        ("{ tasks { title } }", {"errors": [{"message": "boom"}]}, "documented extensions.code"),
        ("{ tasks { title } }", {"errors": [{"message": "x", "extensions": {"code": "OOPS"}}]}, "code"),
        ("{ tasks { title } }", {"data": {"tasks": []}, "stacktrace": "..."}, "top-level keys"),
        (
            "{ task(id: 1) { title } }",
            {"data": {"task": {"title": "t"}}, "errors": [NOT_FOUND]},
            "an error at a field that has a value",
        ),
    ],
)
def test_a_misfit_is_reported(document: str, body: Any, finding: str) -> None:
    found = problems(document, body)
    assert any(finding in problem for problem in found), found


def test_an_interface_value_is_checked_against_the_possible_type_its_keys_fit() -> None:
    document = "{ node(id: 1) { id ... on Task { title } ... on User { name } } }"
    assert problems(document, {"data": {"node": {"id": USER_ID, "name": None}}}) == []
    assert problems(document, {"data": {"node": {"id": TASK_ID, "title": "t"}}}) == []
    assert problems(document, {"data": {"node": {"id": TASK_ID, "title": None}}}) != []


def test_a_scalar_without_a_check_is_a_problem_until_one_is_written() -> None:
    schema = build_schema("scalar Money type Query { price: Money }")
    assert (
        "no check for the scalar Money"
        in shape_problems(schema, parse("{ price }"), {"data": {"price": 1}})[0]
    )
