"""The pure parts of the Idempotency-Key support: the key's syntax, the request fingerprint, which answers
are kept, the sealing of stored bodies and the OpenAPI documentation."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chassis import idempotency
from chassis.idempotency import InvalidKey, fingerprint, keeps, parse_key


@pytest.mark.parametrize(
    ("sent", "key"),
    [
        (b"8e03978e-40d5-43e8-bc93-6894a57f9324", "8e03978e-40d5-43e8-bc93-6894a57f9324"),
        (b'"8e03978e-40d5-43e8-bc93-6894a57f9324"', "8e03978e-40d5-43e8-bc93-6894a57f9324"),  # the draft's sf-string
        (b'"say \\"hi\\" \\\\ back"', 'say "hi" \\ back'),
        (b"  padded\t", "padded"),
        (b"a b", "a b"),
        (b"~" * 255, "~" * 255),
    ],
)
def test_valid_keys(sent: bytes, key: str) -> None:
    assert parse_key([sent]) == key


@pytest.mark.parametrize(
    "sent",
    [
        [b""],
        [b'""'],
        [b"x" * 256],
        [b'"' + b"x" * 256 + b'"'],
        [b"schl\xfcssel"],
        [b"tab\tinside"],
        [b"\x7f"],
        [b'"bad \\n escape"'],
        [b'"inner " quote"'],
        [b"one", b"two"],
        [],
    ],
)
def test_invalid_keys(sent: list[bytes]) -> None:
    with pytest.raises(InvalidKey):
        parse_key(sent)


def test_the_fingerprint_is_the_request_not_its_spelling() -> None:
    body = json.dumps({"b": 1, "a": [1, 2]}).encode()
    same = b'{ "a" : [1, 2],\n "b": 1 }'
    assert fingerprint("POST", "/api/v1/x", b"", [], body) == fingerprint("POST", "/api/v1/x", b"", [], same)
    base = fingerprint("POST", "/api/v1/x", b"", [], body)
    assert fingerprint("PUT", "/api/v1/x", b"", [], body) != base
    assert fingerprint("POST", "/api/v1/y", b"", [], body) != base
    assert fingerprint("POST", "/api/v1/x", b"dry_run=true", [], body) != base
    assert fingerprint("POST", "/api/v1/x", b"", [(b"if-match", b'"v2"')], body) != base
    assert fingerprint("POST", "/api/v1/x", b"", [(b"x-request-id", b"other")], body) == base
    assert fingerprint("POST", "/api/v1/x", b"", [], b'{"b": 1, "a": [2, 1]}') != base
    # Bodies that are not JSON count byte for byte; parts cannot run into each other.
    assert fingerprint("POST", "/api/v1/x", b"", [], b"not json ") != fingerprint(
        "POST", "/api/v1/x", b"", [], b"not json"
    )
    assert fingerprint("POST", "/a", b"b", [], b"") != fingerprint("POST", "/ab", b"", [], b"")
    assert fingerprint("POST", "/x", b"", [], b"[" * 100_000) == fingerprint("POST", "/x", b"", [], b"[" * 100_000)


@pytest.mark.parametrize(
    ("status", "kept"),
    [(200, True), (201, True), (204, True), (401, True), (403, True), (405, True), (410, True)]
    + [(s, False) for s in (400, 404, 408, 409, 412, 422, 425, 428, 429)]
    + [(s, False) for s in (500, 502, 503, 504)]
    + [(301, False), (100, False)],
)
def test_which_answers_are_kept(status: int, kept: bool) -> None:
    assert keeps(status) is kept


def test_the_caller_is_the_actor_and_the_partner() -> None:
    staff = idempotency.caller_of([(b"x-actor", b"user:lotse"), (b"x-role", b"caseworker")])
    partner = idempotency.caller_of([(b"x-actor", b"user:lotse"), (b"x-partner-id", b"vhs-landsberg")])
    assert staff == "user:lotse"
    assert partner == "user:lotse partner:vhs-landsberg"
    assert idempotency.caller_of([]) == "anonymous"


@given(st.binary(max_size=2048))
def test_sealed_bodies_open_only_for_their_row_and_secret(body: bytes) -> None:
    bodies = idempotency.SealedBodies("a-secret-for-this-test-only-32-bytes")
    sealed = bodies.seal("scope-a", body)
    assert bodies.open("scope-a", sealed) == body
    assert bodies.open("scope-b", sealed) is None
    assert idempotency.SealedBodies("another-secret-also-32-bytes-long!!").open("scope-a", sealed) is None
    assert bodies.open("scope-a", sealed[:-1] + bytes([sealed[-1] ^ 1])) is None
    assert len(body) < 8 or body not in sealed


def test_the_openapi_document_names_the_header_on_writes_only() -> None:
    spec: dict[str, Any] = {
        "paths": {
            "/api/v1/things": {
                "get": {"responses": {"200": {}}},
                "post": {"parameters": [{"name": "X-Actor", "in": "header"}], "responses": {"201": {}, "422": {}}},
            },
            "/health": {"post": {"responses": {"200": {}}}},
        }
    }
    idempotency.document(idempotency.document(spec))  # twice: still one parameter
    post = spec["paths"]["/api/v1/things"]["post"]
    assert [p["name"] for p in post["parameters"]] == ["X-Actor", "Idempotency-Key"]
    assert "Idempotent-Replayed" in post["responses"]["201"]["headers"]
    assert "headers" not in post["responses"]["422"]
    assert "parameters" not in spec["paths"]["/api/v1/things"]["get"]
    assert "parameters" not in spec["paths"]["/health"]["post"]
