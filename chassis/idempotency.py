"""``Idempotency-Key`` for writes: a retried POST, PUT, PATCH or DELETE under ``/api/`` runs once.

After the IETF draft "The Idempotency-Key HTTP Header Field" (draft-ietf-httpapi-idempotency-key-header)
and Stripe's practice:

- The key is 1 to 255 printable ASCII characters, sent bare (``Idempotency-Key: 8e03...``, as Stripe's
  clients do) or as the draft's structured-field string (``Idempotency-Key: "8e03..."``); anything else,
  or the header twice, is a 400 problem (``idempotency-key-invalid``).
- A key belongs to the caller (``X-Actor`` and ``X-Partner-Id``, which the service's identity middleware
  has set from the gateway's signed token), the method and the path: two callers never see each other's.
- The first request runs; its response (status, the headers in :data:`KEPT_HEADERS`, body) is stored
  with a fingerprint of the request (method, path, query, the conditional headers ``If-Match``,
  ``If-None-Match`` and ``If-Unmodified-Since``, and the body; a JSON body in canonical form, so that a
  retry serialising the same object in another key order is the same request).
- A retry with the same key and fingerprint gets the stored response with ``Idempotent-Replayed: true``
  and the handler does not run again (no second state change, no second event in the outbox).
- The same key with another request is a 422 problem (``idempotency-key-reused``); a retry while the
  first is still running is a 409 problem (``idempotency-request-in-flight``) with ``Retry-After``.
- Stored: 2xx answers, and 4xx answers that are the final word on the request (401, 403, 405, 410...).
  Not stored, so that a retry with the same key runs again (:data:`RUN_AGAIN`): a malformed or invalid
  request (400, 422, 428: nothing ran, and the client may correct it and send it again under the same key,
  as Stripe allows) and answers that depend on a state that may change (404, e.g. a referral still on its
  way over Kafka; 408; 409 conflict or invalid transition; 412 stale If-Match; 425; 429). Never 5xx,
  and never a request that failed with an exception: those release the key.
- A response body over :data:`MAX_STORED_BODY` is not stored; the key stays taken (the request did
  run), and a retry gets a 409 problem (``idempotency-response-not-kept``) that says so and names the
  original status, instead of running the request a second time.
- Stored responses expire :data:`TIME_TO_LIVE` after the first request; a periodic sweep
  (:meth:`IdempotencyStore.purge_expired`) deletes them, and an expired key counts as new.

Privacy: responses can hold personal data (a registration answers with the person's name and address)
or secrets shown once (a partner's new API key). The rows live in the service's own database next to
the data itself, for at most 24 hours, and their bodies are sealed with AES-GCM under a key derived
from the service's own idempotency secret (``<SERVICE>_IDEMPOTENCY_SECRET``, a deployment secret, not in
the database), bound to the row: a copy of the database alone does not reveal them.

Erasure (GDPR Art. 17) does not wait for the day to pass: :meth:`IdempotencyStore.forget` deletes, in the
caller's transaction, every stored request that concerns a subject (a person's pseudonymous id, and the ids
of the service's own records about them: a case, a referral, a delivery). A row concerns a subject when its
path names it as a segment (``/persons/{id}/...``, ``/cases/{id}/notes``: also a request still running) or
its kept response names it (``POST /registrations`` answers with the new person's id). Stored answers are
not tagged when they are made, so no route has to remember to tag them; the price is that forgetting opens
every stored answer of the last 24 hours, which erasure, a rare act, can afford. A retry of a forgotten
request runs again (and meets the erased state: 410, 404 or 409). Services call it through
:meth:`chassis.uow.UnitOfWork.forget_stored_responses` in the unit of work that erases.

The effect and the key: the stored response is written after the handler's commit (the answer is made after
it), but the handler's commit itself marks the key "done, answer to follow" (:data:`EFFECT_COMMITTED`, in the same
transaction, through :class:`chassis.uow.UnitOfWork`), so that a process dying between the two never lets the
request run twice: a retry gets 409 ``idempotency-request-in-flight`` for the rest of :data:`LEASE` (the answer may
still come), then 409 ``idempotency-response-lost``, which tells the client that the request was carried out and to
read the resource. A key whose request died before its commit is taken over after the lease and runs again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import uuid
from collections.abc import Awaitable, Callable, Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import unquote

import anyio
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    bindparam,
    delete,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.dml import Update
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chassis.clock import Clock, as_utc, system_clock
from chassis.db import new_metadata
from chassis.errors import problem_response

log = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
MAX_KEY_LENGTH = 255
TIME_TO_LIVE = timedelta(hours=24)
#: A first request still "in flight" after this is taken to be dead (its process stopped); the gateway
#: gives up on a service after 10 seconds, so no live request runs this long. Three times that, not more: a client
#: whose request died with a killed service retries for this long before it runs again (it was 2 minutes, which the
#: fault-injection suite, tests/faults, saw as registrations stuck behind 409s long after the service was back).
LEASE = timedelta(seconds=30)
MAX_STORED_BODY = 1024 * 1024
SWEEP_SECONDS = 3600.0
#: Client errors after which a retry with the same key runs again instead of replaying them: the request
#: was refused before it did anything (400, 422, 428) or the state that refused it may change.
RUN_AGAIN = frozenset({400, 404, 408, 409, 412, 422, 425, 428, 429})
#: The response headers a replay repeats; the others (security headers, request id) are set anew.
KEPT_HEADERS = frozenset({"content-type", "content-language", "location", "etag", "last-modified"})
TABLE_NAME = "idempotency_keys"
#: :meth:`IdempotencyStore.forget` searches for subjects as text: a short one would match unrelated answers.
MIN_SUBJECT_LENGTH = 8
FORGET_PAGE = 200
#: ``status`` of a key whose request committed its effect and has not kept its answer yet (no HTTP status is 0).
EFFECT_COMMITTED = 0

_metadata = new_metadata()


def define_idempotency_table(metadata: MetaData) -> Table:
    """The stored responses; each service's own migration creates it (a frozen copy of this shape)."""
    return Table(
        TABLE_NAME,
        metadata,
        # sha256 of caller, method, path and key: a fixed-size primary key however long the path.
        Column("scope", String(64), primary_key=True),
        Column("caller", String(300), nullable=False),
        Column("method", String(10), nullable=False),
        Column("path", String(500), nullable=False),
        Column("idempotency_key", String(MAX_KEY_LENGTH), nullable=False),
        Column("fingerprint", String(64), nullable=False),
        # Which request holds the key: a late finisher never overwrites a row another has taken over.
        Column("claim", String(32), nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("expires_at", DateTime(timezone=True), nullable=False, index=True),
        Column("status", Integer, nullable=True),  # none while the first request runs
        Column("headers", JSON, nullable=True),
        Column("body", LargeBinary, nullable=True),  # sealed; none when the response was too large to keep
    )


TABLE = define_idempotency_table(_metadata)

# The store's statements, built once: each request runs three of them (take the key, mark it done with the effect,
# keep the answer), and building a statement with its values anew (coercing every value into a bound parameter) cost
# more CPU than running it. Values come as the execution's parameters: an UPDATE's SET names the columns given.
_HELD = (TABLE.c.scope == bindparam("held_scope")) & (TABLE.c.claim == bindparam("held_claim"))
_TAKE = TABLE.insert()
_READ = select(TABLE).where(TABLE.c.scope == bindparam("held_scope"))
_UPDATE_HELD = update(TABLE).where(_HELD)
_MARK_COMMITTED = update(TABLE).where(_HELD, TABLE.c.status.is_(None))
#: The same as part of another statement (chassis.uow.UnitOfWork.commit_inserts), where SET names its value.
_MARK_COMMITTED_IN = _MARK_COMMITTED.values(status=EFFECT_COMMITTED)
_DELETE_HELD = delete(TABLE).where(_HELD)


# --- the key, the caller and the request's fingerprint ---------------------------------------------------


class InvalidKey(ValueError):
    pass


def parse_key(values: list[bytes]) -> str:
    """The key from the header's values: bare, or the draft's sf-string (quoted, ``\\"`` and ``\\\\`` escaped)."""
    if len(values) != 1:
        raise InvalidKey(f"Send one {HEADER} header, not {len(values)}.")
    raw = values[0].decode("latin-1").strip(" \t")
    if len(raw) >= 2 and raw[0] == '"' and raw[-1] == '"':
        raw = _unquote(raw[1:-1])
    if not 1 <= len(raw) <= MAX_KEY_LENGTH:
        raise InvalidKey(f"An {HEADER} has 1 to {MAX_KEY_LENGTH} characters.")
    if not all(" " <= c <= "~" for c in raw):
        raise InvalidKey(f"An {HEADER} has printable ASCII characters only.")
    return raw


def _unquote(inner: str) -> str:
    out: list[str] = []
    chars = iter(inner)
    for c in chars:
        if c == "\\":
            escaped = next(chars, "")
            if escaped not in ('"', "\\"):
                raise InvalidKey(f'A quoted {HEADER} escapes only \\" and \\\\.')
            out.append(escaped)
        elif c == '"':
            raise InvalidKey(f"A quoted {HEADER} escapes the quotes inside it.")
        else:
            out.append(c)
    return "".join(out)


def caller_of(headers: list[tuple[bytes, bytes]]) -> str:
    """Who calls, as the identity middleware vouches for it; calls without identity (development) share one."""
    named = {k: v.decode("latin-1") for k, v in headers if k in (b"x-actor", b"x-partner-id")}
    caller = named.get(b"x-actor") or "anonymous"
    if b"x-partner-id" in named:
        caller += f" partner:{named[b'x-partner-id']}"
    return caller[:300]


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:  # length-prefixed: no two different part lists give the same input
        h.update(f"{len(part)}:".encode())
        h.update(part)
    return h.hexdigest()


#: Request headers that change what a write means (a PATCH against another version is another request).
FINGERPRINTED_HEADERS = (b"if-match", b"if-none-match", b"if-unmodified-since")


def fingerprint(method: str, path: str, query: bytes, headers: list[tuple[bytes, bytes]], body: bytes) -> str:
    """sha256 of method, path, query, conditional headers and body; a JSON body in canonical form."""
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    except (ValueError, RecursionError):  # not JSON (or empty, or absurdly deep): the bytes as sent
        canonical = body
    conditions = [b",".join(v for k, v in headers if k == name) for name in FINGERPRINTED_HEADERS]
    return _digest(method.encode(), path.encode(), query, *conditions, canonical)


# --- the store --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Claimed:
    """This request holds the key: run it, then :meth:`IdempotencyStore.finish` or ``release``."""

    scope: str
    claim: str


@dataclass(frozen=True)
class Stored:
    status: int
    headers: list[tuple[str, str]]
    body: bytes | None  # none: the request ran, but its response was not kept


@dataclass(frozen=True)
class InFlight:
    pass


@dataclass(frozen=True)
class Lost:
    """The request with this key committed its effect, and its process ended before it kept the answer."""


@dataclass(frozen=True)
class Reused:
    pass


Outcome = Claimed | Stored | InFlight | Reused | Lost

#: The key the request being served holds (set by the middleware around the app), for :meth:`IdempotencyStore.
#: mark_committed` in the request's unit of work.
_holding: ContextVar[tuple[IdempotencyStore, Claimed] | None] = ContextVar("idempotency_holding", default=None)


class SealedBodies:
    """AES-GCM with a key derived from a deployment secret; the row's scope is the associated data."""

    def __init__(self, secret: str) -> None:
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"landsberg idempotency responses v1")
        self._aead = AESGCM(key.derive(secret.encode()))

    def seal(self, scope: str, body: bytes) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, body, scope.encode())

    def open(self, scope: str, sealed: bytes) -> bytes | None:
        """None when it cannot be opened (the secret was rotated since): the response counts as not kept."""
        try:
            return self._aead.decrypt(sealed[:12], sealed[12:], scope.encode())
        except (InvalidTag, ValueError):
            return None


class IdempotencyStore:
    def __init__(
        self,
        engine: AsyncEngine,
        secret: str,
        clock: Clock = system_clock,
        *,
        time_to_live: timedelta = TIME_TO_LIVE,
        lease: timedelta = LEASE,
        max_body: int = MAX_STORED_BODY,
    ) -> None:
        self.engine = engine
        #: Each of the store's own writes and reads is one statement: in autocommit it is one round trip to the
        #: database instead of three (BEGIN, the statement, COMMIT), and a single statement is atomic anyway.
        #: Measured: the key's insert was a quarter of the registration service's CPU under load.
        self._single = engine.execution_options(isolation_level="AUTOCOMMIT")
        self.bodies = SealedBodies(secret)
        self.clock = clock
        self.time_to_live = time_to_live
        self.lease = lease
        self.max_body = max_body

    async def begin(self, caller: str, method: str, path: str, key: str, fingerprint: str) -> Outcome:
        """Take the key for this request, or say what the earlier request with it left."""
        scope = _digest(caller.encode(), method.encode(), path.encode(), key.encode())
        for _ in range(3):  # an expired or abandoned row is deleted and the insert tried again
            now = self.clock()
            claim = uuid.uuid4().hex
            try:
                async with self._single.connect() as conn:
                    await conn.execute(
                        _TAKE,
                        {
                            "scope": scope,
                            "caller": caller,
                            "method": method,
                            "path": path[:500],
                            "idempotency_key": key,
                            "fingerprint": fingerprint,
                            "claim": claim,
                            "created_at": now,
                            "expires_at": now + self.time_to_live,
                        },
                    )
                return Claimed(scope, claim)
            except IntegrityError:
                pass  # the key is taken: see by whom
            async with self._single.connect() as conn:
                row = (await conn.execute(_READ, {"held_scope": scope})).first()
            if row is None:
                continue  # released in the meantime
            expired = _utc(row.expires_at) <= now
            abandoned = row.status is None and _utc(row.created_at) + self.lease <= now
            if expired or abandoned:
                async with self._single.connect() as conn:
                    await conn.execute(_DELETE_HELD, {"held_scope": scope, "held_claim": row.claim})
                continue
            if row.fingerprint != fingerprint:
                return Reused()
            if row.status is None:
                return InFlight()
            if row.status == EFFECT_COMMITTED:
                # Its answer may still come (the request is finishing) until the lease has passed.
                return InFlight() if _utc(row.created_at) + self.lease > now else Lost()
            body = None if row.body is None else self.bodies.open(scope, row.body)
            return Stored(row.status, [(str(k), str(v)) for k, v in row.headers or []], body)
        return InFlight()  # others keep taking it over: behave as if it ran now

    async def finish(self, claimed: Claimed, status: int, headers: list[tuple[str, str]], body: bytes | None) -> None:
        """Keep the response (``body`` None: too large to keep), or release the key where a retry should run."""
        if not keeps(status):
            await self.release(claimed)
            return
        sealed = None if body is None else self.bodies.seal(claimed.scope, body)
        async with self._single.connect() as conn:
            await conn.execute(
                _UPDATE_HELD,
                {
                    "held_scope": claimed.scope,
                    "held_claim": claimed.claim,
                    "status": status,
                    "headers": [list(h) for h in headers],
                    "body": sealed,
                },
            )

    async def mark_committed(self, conn: AsyncConnection) -> None:
        """In ``conn``'s transaction (the request's effect): the key the request being served holds is done, its
        answer to follow. Nothing when no request with a key is being served here (a consumer, a timer)."""
        holding = _holding.get()
        if holding is None or holding[0] is not self:
            return
        claimed = holding[1]
        await conn.execute(
            _MARK_COMMITTED, {"held_scope": claimed.scope, "held_claim": claimed.claim, "status": EFFECT_COMMITTED}
        )

    def mark_statement(self) -> tuple[Update, dict[str, str]] | None:
        """:meth:`mark_committed` as an update to run within the effect's own statement, with its parameters; None
        when no request with a key is being served here."""
        holding = _holding.get()
        if holding is None or holding[0] is not self:
            return None
        return _MARK_COMMITTED_IN, {"held_scope": holding[1].scope, "held_claim": holding[1].claim}

    async def release(self, claimed: Claimed) -> None:
        async with self._single.connect() as conn:
            await conn.execute(_DELETE_HELD, {"held_scope": claimed.scope, "held_claim": claimed.claim})

    async def forget(self, conn: AsyncConnection, subjects: Iterable[str]) -> int:
        """Delete every stored request about one of ``subjects``, in ``conn``'s transaction; the number deleted.

        ``subjects`` are identifiers unique enough to be searched for as text (UUIDs, ``msg_...``): a row
        goes when its path has one as a segment, or its kept response (headers, opened body) contains one.
        Rows are read in pages, so that memory stays bounded however many answers are kept.
        """
        wanted = frozenset(s for s in subjects)
        if not wanted:
            return 0
        short = sorted(s for s in wanted if len(s) < MIN_SUBJECT_LENGTH)
        if short:
            raise ValueError(f"subjects shorter than {MIN_SUBJECT_LENGTH} characters match too much: {short}")
        needles = [s.encode() for s in wanted]
        doomed: list[str] = []
        after = ""
        while True:
            page = (
                await conn.execute(
                    select(TABLE.c.scope, TABLE.c.path, TABLE.c.headers, TABLE.c.body)
                    .where(TABLE.c.scope > after)
                    .order_by(TABLE.c.scope)
                    .limit(FORGET_PAGE)
                )
            ).all()
            if not page:
                break
            after = page[-1].scope
            for row in page:
                segments = {unquote(part) for part in str(row.path).split("/")}
                named = not wanted.isdisjoint(segments) or any(
                    subject in str(value) for _, value in row.headers or [] for subject in wanted
                )
                if not named and row.body is not None:
                    # A body sealed under a retired secret cannot be opened, here or by anyone holding the new one.
                    body = self.bodies.open(row.scope, row.body)
                    named = body is not None and any(needle in body for needle in needles)
                if named:
                    doomed.append(row.scope)
        for start in range(0, len(doomed), FORGET_PAGE):
            await conn.execute(delete(TABLE).where(TABLE.c.scope.in_(doomed[start : start + FORGET_PAGE])))
        return len(doomed)

    async def purge_expired(self) -> int:
        async with self.engine.begin() as conn:
            result = await conn.execute(delete(TABLE).where(TABLE.c.expires_at <= self.clock()))
        return int(result.rowcount or 0)


def _utc(moment: datetime) -> datetime:
    utc = as_utc(moment)
    assert utc is not None  # the columns are not nullable
    return utc


def keeps(status: int) -> bool:
    """Whether a response with ``status`` is stored for replay (see the module's description)."""
    return 200 <= status < 300 or (400 <= status < 500 and status not in RUN_AGAIN)


# --- the middleware ---------------------------------------------------------------------------------------


class IdempotencyKeys:
    """Service middleware, inside the identity middleware (it scopes keys by the verified caller).

    ``store`` gives the store once the app's lifespan has made it; before that, requests pass through.
    """

    def __init__(self, app: ASGIApp, store: Callable[[], IdempotencyStore | None]) -> None:
        self.app = app
        self.store = store

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in MUTATING_METHODS or not scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return
        headers: list[tuple[bytes, bytes]] = list(scope.get("headers", []))
        values = [v for k, v in headers if k == b"idempotency-key"]
        store = self.store()
        if not values or store is None:
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        try:
            key = parse_key(values)
        except InvalidKey as exc:
            await problem_response(400, str(exc), kind="idempotency-key-invalid", instance=path)(scope, receive, send)
            return
        body = await _read_body(receive)
        if body is None:
            return  # the client went away before sending its request
        method: str = scope["method"]
        outcome = await store.begin(
            caller_of(headers),
            method,
            path,
            key,
            fingerprint(method, path, scope.get("query_string", b""), headers, body),
        )
        if isinstance(outcome, Claimed):
            await self._run(store, outcome, scope, _replay(body, receive), send)
            return
        await _answer_for(outcome, path)(scope, receive, send)

    async def _run(self, store: IdempotencyStore, claimed: Claimed, scope: Scope, receive: Receive, send: Send) -> None:
        status = 0
        kept: list[tuple[str, str]] = []
        chunks: list[bytes] = []
        size = 0
        finished = False

        async def capture(message: Message) -> None:
            nonlocal status, kept, size, finished
            if message["type"] == "http.response.start":
                status = int(message["status"])
                kept = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in message.get("headers", [])]
                kept = [(k, v) for k, v in kept if k.lower() in KEPT_HEADERS]
            elif message["type"] == "http.response.body" and not finished:
                chunk = message.get("body", b"")
                size += len(chunk)
                if size <= store.max_body:
                    chunks.append(chunk)
                if not message.get("more_body", False):
                    finished = True
                    # Stored before the client has the whole answer: a retry after it never finds it "in flight".
                    try:
                        await store.finish(claimed, status, kept, b"".join(chunks) if size <= store.max_body else None)
                    except Exception:
                        log.exception("could not store the response for an idempotency key; it stays in flight")
            await send(message)

        holding = _holding.set((store, claimed))
        try:
            await self.app(scope, receive, capture)
        except BaseException:
            if not finished:
                await _release_shielded(store, claimed)
            raise
        finally:
            _holding.reset(holding)
        if not finished:  # the app ended without a complete response
            await _release_shielded(store, claimed)


async def _release_shielded(store: IdempotencyStore, claimed: Claimed) -> None:
    """Release even while the request is being cancelled (a client that went away)."""
    with anyio.CancelScope(shield=True):
        try:
            await store.release(claimed)
        except Exception:
            log.exception("could not release an idempotency key; it frees itself after the lease")


ASGIResponse = Callable[[Scope, Receive, Send], Awaitable[None]]


def _answer_for(outcome: Stored | InFlight | Reused | Lost, path: str) -> ASGIResponse:
    if isinstance(outcome, Reused):
        return problem_response(
            422,
            f"This {HEADER} was used for a different request; use a new key for a new request.",
            kind="idempotency-key-reused",
            title="Idempotency key reused",
            instance=path,
        )
    if isinstance(outcome, InFlight):
        return problem_response(
            409,
            f"The first request with this {HEADER} is still being processed; retry shortly.",
            kind="idempotency-request-in-flight",
            title="Request in flight",
            instance=path,
            headers={"Retry-After": "1"},
        )
    if isinstance(outcome, Lost):
        return problem_response(
            409,
            f"The request with this {HEADER} was carried out, but its answer was lost (the service stopped before "
            "keeping it), so it is not run again; read the resource for its current state.",
            kind="idempotency-response-lost",
            title="Response lost",
            instance=path,
        )
    if outcome.body is None:
        return problem_response(
            409,
            f"The request with this {HEADER} was processed (status {outcome.status}), but its response was too "
            "large to keep, so it cannot be repeated; read the resource for its current state.",
            kind="idempotency-response-not-kept",
            title="Response not kept",
            instance=path,
            original_status=outcome.status,
        )
    return _replayed(outcome.status, outcome.headers, outcome.body)


def _replayed(status: int, headers: list[tuple[str, str]], body: bytes) -> ASGIResponse:
    raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
    raw += [(b"content-length", str(len(body)).encode()), (REPLAYED_HEADER.lower().encode(), b"true")]

    async def respond(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": body})

    return respond


async def _read_body(receive: Receive) -> bytes | None:
    """The whole request body (the size limit middleware outside has bounded it); None on disconnect."""
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        body += message.get("body", b"")
        if not message.get("more_body", False):
            return bytes(body)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


# --- documentation --------------------------------------------------------------------------------------

PARAMETER: dict[str, Any] = {
    "name": HEADER,
    "in": "header",
    "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH},
    "description": (
        "Makes a retry of this write safe: a unique value per request (a UUID), 1-255 printable ASCII "
        "characters. A retry with the same key and body gets the first answer again, with "
        f"`{REPLAYED_HEADER}: true`, and nothing runs twice; the same key with another body is 422 "
        "(`idempotency-key-reused`); a retry while the first still runs is 409 with `Retry-After`, and 409 "
        "(`idempotency-response-lost`) once the first is known to have run but its answer was lost. 2xx and "
        "4xx answers are kept for 24 hours, except 400, 404, 408, 409, 412, 422, 425, 428 and 429, after which "
        "a retry runs again (as after any 5xx). Keys are per caller, method and path."
    ),
}


def document(openapi: dict[str, Any]) -> dict[str, Any]:
    """Add the header to every write under ``/api/`` in an OpenAPI document (in place)."""
    replayed = {
        "description": "`true` when this is the stored answer to an earlier request with the same Idempotency-Key.",
        "schema": {"type": "string", "enum": ["true"]},
    }
    for route, item in openapi.get("paths", {}).items():
        if not route.startswith("/api/"):
            continue
        for method, operation in item.items():
            if method.upper() not in MUTATING_METHODS or not isinstance(operation, dict):
                continue
            parameters = operation.setdefault("parameters", [])
            named = {str(p.get("name", "")).lower() for p in parameters if p.get("in") == "header"}
            if "idempotency-key" not in named:
                parameters.append(PARAMETER)
            for code, response in operation.get("responses", {}).items():
                if str(code).startswith("2"):
                    response.setdefault("headers", {})[REPLAYED_HEADER] = replayed
    return openapi
