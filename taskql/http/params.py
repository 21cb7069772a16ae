"""What a GraphQL-over-HTTP request is: its parameters, read from a POST's JSON body or a GET's query string
and checked against the spec's rules and taskql's bounds before anything executes.

A request that is not well formed is refused with 400 (``BAD_REQUEST``) and a message that says what to send:
- the body is not UTF-8 or not JSON (``NaN`` and ``Infinity`` are not JSON), or is not an object (an array
  is a batch, which taskql does not take);
- ``query`` or ``operationName`` is not a string, ``variables`` or ``extensions`` not an object (``null``
  is the same as leaving a parameter out, and so is an empty GET parameter);
- ``variables`` or ``extensions`` take more than ``max_variables_bytes`` as JSON, or nest deeper than
  ``MAX_JSON_DEPTH`` levels counted from the body;
- a parameter holds a lone UTF-16 surrogate escape (``\\ud800``): text that no UTF-8 can encode, which
  would fail wherever it is encoded next (a hash, the database).
The checks run in that order, cheapest first: what they walk in Python (nesting, surrogates) is only the
parameters, once their size is known to be bounded. Members other than the four (and ``documentId``) are
reserved by the spec and ignored. Whether ``query`` is there at all is checked later, once a persisted
query's hash had its chance to fill it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, NoReturn

from strawberry.http import GraphQLRequestData

from taskql.http.refusals import RequestRefused

MAX_JSON_DEPTH = 32  # the body is level 1, its variables 2: far deeper than any input type of the schema


def _refuse(message: str) -> NoReturn:
    raise RequestRefused(400, message)


def _constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


def _deeper_than(value: object, limit: int) -> bool:
    """Whether objects and arrays nest more than ``limit`` levels in ``value`` (iteratively: no recursion)."""
    if not isinstance(value, (dict, list)):
        return False
    stack: list[tuple[dict[str, Any] | list[Any], int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()  # only objects and arrays are ever on the stack
        if depth > limit:
            return True
        children = node.values() if isinstance(node, dict) else node
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def _has_lone_surrogate(value: object) -> bool:
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            try:
                node.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return False


def _may_hold_surrogates(text: str) -> bool:
    """Cheap: a lone surrogate can only come from an escape (UTF-8 input cannot encode one)."""
    return "\\ud" in text or "\\uD" in text


def decode_json(data: bytes | str, what: str = "The request body") -> Any:
    """JSON as the spec has it: UTF-8, strict."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    except UnicodeDecodeError as error:
        _refuse(f"{what} is not valid UTF-8 (byte {error.start}): GraphQL over HTTP is UTF-8 only.")
    try:
        return json.loads(text, parse_constant=_constant)
    except RecursionError:
        _refuse(f"{what} nests deeper than {MAX_JSON_DEPTH} levels.")
    except ValueError as error:  # JSONDecodeError, NaN, or an integer of more digits than Python reads
        _refuse(f"{what} is not valid JSON: {error}.")


def _document_id_into_extensions(data: dict[str, Any]) -> dict[str, Any]:
    """A top-level ``documentId`` (GraphQL over HTTP persisted documents) travels on in ``extensions``."""
    if "documentId" in data:
        extensions = data.get("extensions")
        extensions = extensions if isinstance(extensions, dict) else {}
        data = {**data, "extensions": {**extensions, "documentId": data["documentId"]}}
    return data


def _check_bounds(name: str, value: dict[str, Any], raw_bytes: int, max_bytes: int) -> None:
    """``raw_bytes`` bounds the size of ``value`` as JSON (the body's size): it is measured only when it might
    be too large."""
    if raw_bytes > max_bytes:
        size = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())
        if size > max_bytes:
            _refuse(f"`{name}` take {size} bytes as JSON, more than the {max_bytes} allowed.")
    if _deeper_than(value, MAX_JSON_DEPTH - 1):  # the body is the first level
        _refuse(f"`{name}` nest deeper than {MAX_JSON_DEPTH} levels (counted from the request body).")


def request_data(
    data: object,
    *,
    raw_bytes: int,
    max_variables_bytes: int,
    may_hold_surrogates: bool,
    what: str = "The request body",
) -> GraphQLRequestData:
    """The request's parameters, checked."""
    if isinstance(data, list):
        _refuse(
            "Batched requests (a JSON array of operations) are not supported: send one operation per request."
        )
    if not isinstance(data, dict):
        _refuse(f'{what} must be a JSON object: {{"query": "...", "variables": {{...}}}}.')
    data = _document_id_into_extensions(data)
    query, operation_name = data.get("query"), data.get("operationName")
    variables, extensions = data.get("variables"), data.get("extensions")
    if operation_name == "":  # the spec's GET rule (an empty name is no name), taken for POST too
        operation_name = None
    if not isinstance(query, (str, type(None))):
        _refuse("`query` must be a string: the GraphQL document.")
    if not isinstance(operation_name, (str, type(None))):
        _refuse("`operationName` must be a string: the name of an operation in the document.")
    if not isinstance(variables, (dict, type(None))):
        _refuse("`variables` must be an object: variable names to values.")
    if not isinstance(extensions, (dict, type(None))):
        _refuse("`extensions` must be an object.")
    for name, value in (("variables", variables), ("extensions", extensions)):
        if value:
            _check_bounds(name, value, raw_bytes, max_variables_bytes)
    if may_hold_surrogates and _has_lone_surrogate([query, operation_name, variables, extensions]):
        _refuse(f"{what} holds a lone UTF-16 surrogate escape (\\ud800 to \\udfff), which is not text.")
    return GraphQLRequestData(
        query=query, variables=variables, operation_name=operation_name, extensions=extensions
    )


def from_body(body: bytes, *, max_variables_bytes: int) -> GraphQLRequestData:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        _refuse(f"The request body is not valid UTF-8 (byte {error.start}): GraphQL over HTTP is UTF-8 only.")
    return request_data(
        decode_json(text),
        raw_bytes=len(body),
        max_variables_bytes=max_variables_bytes,
        may_hold_surrogates=_may_hold_surrogates(text),
    )


def from_query_params(params: Mapping[str, str | None], *, max_variables_bytes: int) -> GraphQLRequestData:
    """A GET's parameters (form-urlencoded): ``variables`` and ``extensions`` are JSON in them."""
    data: dict[str, Any] = {
        name: params[name] or None for name in ("query", "operationName", "documentId") if name in params
    }
    json_texts = [(name, params.get(name) or "") for name in ("variables", "extensions")]
    for name, text in json_texts:
        if text:
            data[name] = decode_json(text, f"The `{name}` parameter")
    return request_data(
        data,
        raw_bytes=max(len(text.encode()) for _, text in json_texts),
        max_variables_bytes=max_variables_bytes,
        may_hold_surrogates=any(_may_hold_surrogates(text) for _, text in json_texts),
        what="The request",
    )
