"""Webhook delivery: the background loop that POSTs pending deliveries, signed, with retries.

Rows are written by the event handlers (in the consumer's transaction, so exactly one row per
event and subscription). This loop claims due rows, sends them with Standard Webhooks headers
and records the outcome; the schedule and the give-up rule are in :mod:`domain`. A claim is a
conditional UPDATE, so several replicas never send the same attempt twice, and a process that
dies mid-send leaves a row that becomes due again when its claim runs out (same webhook-id:
receivers de-duplicate on it).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import socket
import ssl
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from chassis import metrics
from chassis.clock import Clock
from chassis.clock import as_utc as aware
from services.partners import domain
from services.partners.models import ErasedPerson, WebhookDelivery, WebhookSubscription

log = logging.getLogger(__name__)


class SecretBox:
    """Encrypts webhook secrets at rest: they must be recoverable to sign, so a hash will not do."""

    def __init__(self, key: str) -> None:
        derived = hashlib.sha256(b"partners-webhook-secrets:" + key.encode()).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(derived))

    def seal(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode()).decode()

    def open(self, sealed: str) -> str:
        try:
            return self._fernet.decrypt(sealed.encode()).decode()
        except InvalidToken as exc:
            raise ValueError("a webhook secret cannot be decrypted: was the encryption key changed?") from exc


RESOLVE_TIMEOUT_SECONDS = 3.0


async def resolve(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to; getaddrinfo blocks, so it runs in a thread."""
    try:
        infos = await asyncio.wait_for(
            asyncio.to_thread(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM), RESOLVE_TIMEOUT_SECONDS
        )
    except (OSError, TimeoutError):
        return []
    return sorted({str(info[4][0]) for info in infos})


async def check_url(url: str, *, allow_private: bool) -> None:
    """Raise :class:`domain.UnsafeWebhookUrl` unless ``url`` may receive webhooks."""
    target = domain.parse_webhook_url(url, allow_private=allow_private)
    if allow_private or domain.ip_literal(target.host) is not None:
        return
    domain.check_resolved_addresses(target.host, await resolve(target.host, target.port), allow_private=False)


@dataclass(frozen=True)
class Claimed:
    """A due delivery a round claimed, with what its attempt and its record need (read by the claim itself)."""

    id: str
    subscription_id: str
    payload: str
    #: Counting the attempt the claim is for.
    attempts: int
    first_attempt_at: datetime | None
    person_id: str | None


@dataclass(frozen=True)
class Endpoint:
    """A webhook as a round's attempts need it: its secrets opened once for all of them, not once per delivery."""

    url: str
    active: bool
    secrets: tuple[str, ...]
    #: Why its secrets could not be opened (the encryption key changed): each attempt fails with it, and is retried.
    unusable: str | None


@dataclass(frozen=True)
class Outcome:
    delivery: Claimed
    #: None: not attempted, the webhook was deleted (the delivery is cancelled).
    attempted_at: datetime | None
    status_code: int | None = None
    error: str | None = None


#: After a round that failed (the database away), the next one this much later.
RETRY_ROUND_SECONDS = 1.0


class Deliverer:
    def __init__(
        self,
        *,
        session_factory: async_sessionmaker[AsyncSession],
        clock: Clock,
        secret_box: SecretBox,
        policy: domain.RetryPolicy,
        allow_private: bool,
        timeout_seconds: float,
        poll_seconds: float,
        claim_seconds: float,
        batch_size: int = 50,
        concurrency: int = 20,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self.session_factory = session_factory
        engine: AsyncEngine = session_factory.kw["bind"]
        #: For the claim and its reads: single statements in autocommit (the outcomes are one transaction).
        self._single = engine.execution_options(isolation_level="AUTOCOMMIT")
        self.clock = clock
        self.secret_box = secret_box
        self.policy = policy
        self.allow_private = allow_private
        self.poll_seconds = poll_seconds
        self.claim = timedelta(seconds=claim_seconds)
        self.batch_size = batch_size
        self._limit = asyncio.Semaphore(concurrency)
        self._wake = asyncio.Event()
        #: When the earliest pending delivery is due, as the last round saw it (None: none is pending).
        self._next_due: datetime | None = None
        # One pooled client for every delivery (connections kept alive where the receiver allows); redirects are
        # not followed (a 3xx is a failure), which also keeps a receiver from bouncing us to an internal address.
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_seconds),
            follow_redirects=False,
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
            headers={"user-agent": "landsberg-integration-webhooks/1"},
            verify=verify,  # the public CAs, and the city's (HTTP_SSL_CAFILE) for a receiver of its own
        )
        self.delivered_total = 0
        self.failed_attempts_total = 0

    def wake(self) -> None:
        """A delivery waits (committed): the loop runs a round now instead of sleeping until the next one is due."""
        self._wake.set()

    async def report_metrics(self) -> None:
        """Deliveries waiting (pending) and given up (failed, until a partner replays them), and the attempts that
        failed since this process started: a partner not getting its events is data at risk for it."""
        metrics.gauge("webhook_deliveries", "Webhook deliveries by status: pending (to send) or failed (given up).")
        metrics.gauge("webhook_delivery_attempts_failed", "Webhook attempts that failed, since start.", kind="counter")
        watched = (domain.DeliveryStatus.PENDING.value, domain.DeliveryStatus.FAILED.value)
        async with self.session_factory() as session:
            rows = await session.execute(
                select(WebhookDelivery.status, func.count())
                .where(WebhookDelivery.status.in_(watched))
                .group_by(WebhookDelivery.status)
            )
            counts = {str(status): int(count) for status, count in rows.all()}
        by_status: dict[metrics.Labels, float] = {
            (("status", status),): float(counts.get(status, 0)) for status in watched
        }
        metrics.set_values("webhook_deliveries", "partners", by_status)
        metrics.set_values("webhook_delivery_attempts_failed", "partners", {(): float(self.failed_attempts_total)})

    async def run(self) -> None:
        """Rounds: after each, sleep until the next delivery is due or a new one wakes the loop (no polling of an
        empty table); ``poll_seconds`` only bounds the sleep, for a wake that never comes (e.g. rows of a replica
        that died before sending them)."""
        try:
            while True:
                try:
                    attempted = await self.deliver_due()
                except Exception:
                    log.exception("webhook delivery round failed; trying again next round")
                    attempted, self._next_due = 0, self.clock() + timedelta(seconds=RETRY_ROUND_SECONDS)
                if attempted >= self.batch_size:
                    continue  # there may be more due behind this batch
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._sleep_seconds())
                self._wake.clear()
        finally:
            await self.client.aclose()

    def _sleep_seconds(self) -> float:
        if self._next_due is None:
            return self.poll_seconds
        return min(max((self._next_due - self.clock()).total_seconds(), 0.0), self.poll_seconds)

    async def deliver_due(self) -> int:
        """One round: claim the due deliveries with their webhooks (one transaction), send them, record what came of
        them (one transaction); how many were claimed."""
        claimed, endpoints = await self._claim_due(self.clock())
        if not claimed:
            return 0
        results = await asyncio.gather(
            *(self._attempt(d, endpoints.get(d.subscription_id)) for d in claimed), return_exceptions=True
        )
        outcomes = []
        for result in results:
            if isinstance(result, BaseException):
                # The claim runs out and the row is tried again; one bad row never stops the others.
                log.error("webhook attempt crashed: %s", result, exc_info=result)
            elif result is not None:
                outcomes.append(result)
        await self._record(outcomes)
        return len(claimed)

    async def _claim_due(self, now: datetime) -> tuple[list[Claimed], dict[str, Endpoint]]:
        """Claim up to a batch of due deliveries in one conditional UPDATE: a row is claimed by pushing its next
        attempt past the claim's time, so a replica's claim that waited for ours finds it no longer due and leaves
        it (PostgreSQL re-checks the condition on the row it waited for); then their webhooks, in one query."""
        pending = WebhookDelivery.status == domain.DeliveryStatus.PENDING.value
        due = (
            select(WebhookDelivery.id)
            .where(pending, WebhookDelivery.next_attempt_at <= now)
            .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
            .limit(self.batch_size)
        )
        claim = (
            update(WebhookDelivery)
            .where(WebhookDelivery.id.in_(due), pending, WebhookDelivery.next_attempt_at <= now)
            .values(attempts=WebhookDelivery.attempts + 1, next_attempt_at=now + self.claim)
            .returning(
                WebhookDelivery.id,
                WebhookDelivery.subscription_id,
                WebhookDelivery.payload,
                WebhookDelivery.attempts,
                WebhookDelivery.first_attempt_at,
                WebhookDelivery.person_id,
            )
            .execution_options(synchronize_session=False)
        )
        webhooks = select(
            WebhookSubscription.id,
            WebhookSubscription.url,
            WebhookSubscription.active,
            WebhookSubscription.secret_encrypted,
            WebhookSubscription.previous_secret_encrypted,
            WebhookSubscription.previous_secret_valid_until,
        )
        # Single statements, each atomic: in autocommit one round trip each, without BEGIN and COMMIT around them.
        async with self._single.connect() as connection:
            claimed = [Claimed(*row) for row in (await connection.execute(claim)).all()]
            if not claimed:
                self._next_due = await next_due(connection)
                return [], {}
            found = await connection.execute(
                webhooks.where(WebhookSubscription.id.in_({d.subscription_id for d in claimed}))
            )
            endpoints = {row.id: self._endpoint(*row[1:], now=now) for row in found.all()}
        return claimed, endpoints

    def _endpoint(
        self,
        url: str,
        active: bool,
        sealed: str,
        previous_sealed: str | None,
        previous_valid_until: datetime | None,
        *,
        now: datetime,
    ) -> Endpoint:
        try:
            secrets = domain.signing_secrets(
                self.secret_box.open(sealed),
                self.secret_box.open(previous_sealed) if previous_sealed else None,
                aware(previous_valid_until),
                now,
            )
        except ValueError as exc:  # the secret cannot be decrypted: retried, and visible to the partner
            return Endpoint(url, active, (), str(exc))
        return Endpoint(url, active, tuple(secrets), None)

    async def _attempt(self, delivery: Claimed, endpoint: Endpoint | None) -> Outcome | None:
        if endpoint is None:
            return None
        if not endpoint.active:
            return Outcome(delivery, attempted_at=None)
        async with self._limit:
            now = self.clock()
            status_code: int | None = None
            error: str | None = None
            try:
                await check_url(endpoint.url, allow_private=self.allow_private)
                if endpoint.unusable is not None:
                    raise ValueError(endpoint.unusable)
                body = delivery.payload.encode()
                headers = domain.webhook_headers(endpoint.secrets, delivery.id, now, body)
                reply = await self.client.post(endpoint.url, content=body, headers=headers)
                status_code = reply.status_code
                if not domain.is_success(status_code):
                    error = f"HTTP {status_code}"
            except domain.UnsafeWebhookUrl as exc:
                error = f"refused: {exc}"
            except ValueError as exc:  # the secret cannot be decrypted: retried, and visible to the partner
                error = str(exc)
            except httpx.HTTPError as exc:
                # The exception's text, not the request: headers carry signatures, never log those.
                error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            return Outcome(delivery, attempted_at=now, status_code=status_code, error=error)

    async def _record(self, outcomes: list[Outcome]) -> None:
        """What came of a round's attempts, in one transaction: one UPDATE by id per kind of outcome (delivered,
        to retry, given up, cancelled), then those over that concern an erased person emptied."""
        changes: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for outcome in outcomes:
            values = {"id": outcome.delivery.id, **self._outcome(outcome)}
            changes.setdefault(tuple(sorted(values)), []).append(values)
        async with self.session_factory() as session, session.begin():
            for rows in changes.values():
                await session.execute(update(WebhookDelivery), rows)
            about = {o.delivery.id: o.delivery.person_id for o in outcomes if o.delivery.person_id is not None}
            await erase_when_over(session, about, self.clock())
            self._next_due = await next_due(session)

    def _outcome(self, outcome: Outcome) -> dict[str, Any]:
        """The columns an outcome changes (a delivery cancelled meanwhile, when its webhook was deleted, keeps its
        status unless it got through)."""
        delivery, attempted_at, status_code, error = (
            outcome.delivery,
            outcome.attempted_at,
            outcome.status_code,
            outcome.error,
        )
        if attempted_at is None:
            return {"status": domain.DeliveryStatus.CANCELLED.value, "next_attempt_at": None}
        first_attempt_at = aware(delivery.first_attempt_at) or attempted_at
        tried = {"last_attempt_at": attempted_at, "first_attempt_at": first_attempt_at, "last_status_code": status_code}
        if error is None:
            self.delivered_total += 1
            log.info("webhook %s delivered (HTTP %s)", delivery.id, status_code)
            return tried | {
                "status": domain.DeliveryStatus.DELIVERED.value,
                "delivered_at": attempted_at,
                "next_attempt_at": None,
                "last_error": None,
            }
        self.failed_attempts_total += 1
        next_at = self.policy.next_attempt(
            attempts=delivery.attempts, first_attempt_at=first_attempt_at, now=attempted_at
        )
        if next_at is None:
            log.warning("webhook %s failed for good after %d attempts", delivery.id, delivery.attempts)
            return tried | {
                "last_error": error[:300],
                "status": domain.DeliveryStatus.FAILED.value,
                "next_attempt_at": None,
            }
        log.info("webhook %s attempt %d failed (%s); next at %s", delivery.id, delivery.attempts, error, next_at)
        return tried | {"last_error": error[:300], "next_attempt_at": next_at}


async def next_due(connection: AsyncSession | AsyncConnection) -> datetime | None:
    """When the earliest pending delivery is due (None: none is pending)."""
    return aware(
        await connection.scalar(
            select(func.min(WebhookDelivery.next_attempt_at)).where(
                WebhookDelivery.status == domain.DeliveryStatus.PENDING.value
            )
        )
    )


def erased_columns(now: datetime) -> dict[str, Any]:
    """What a finished delivery about an erased person keeps: its log entry, not the payload or the person."""
    return {"payload": "", "person_id": None, "erased_at": now}


async def erase_when_over(session: AsyncSession, deliveries: dict[str, str], now: datetime) -> None:
    """Empty those of these deliveries (id: the person they are about) that are over and concern an erased person
    (handlers.person_erased empties the others). Run after their outcomes' UPDATE in the same transaction: the rows
    are held, so an erasure under way waits for this transaction and then finds them over; one committed before is
    seen by this statement."""
    if not deliveries:
        return
    erased = select(ErasedPerson.person_id).where(ErasedPerson.person_id.in_(set(deliveries.values())))
    await session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.id.in_(deliveries),
            WebhookDelivery.status != domain.DeliveryStatus.PENDING.value,
            WebhookDelivery.person_id.in_(erased),
        )
        .values(**erased_columns(now))
        .execution_options(synchronize_session=False)
    )


def replay(delivery: WebhookDelivery, now: datetime) -> None:
    """Send a finished delivery again, same webhook-id and body, with a fresh 24-hour window."""
    delivery.status = domain.DeliveryStatus.PENDING.value
    delivery.attempts = 0
    delivery.replays += 1
    delivery.first_attempt_at = None
    delivery.next_attempt_at = now
    delivery.delivered_at = None


def delivery_fields(delivery: WebhookDelivery) -> dict[str, Any]:
    return {
        "delivery_id": delivery.id,
        "webhook_id": delivery.subscription_id,
        "event_id": delivery.event_id,
        "event_type": delivery.event_type,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "replays": delivery.replays,
        "created_at": aware(delivery.created_at),
        "first_attempt_at": aware(delivery.first_attempt_at),
        "last_attempt_at": aware(delivery.last_attempt_at),
        "next_attempt_at": aware(delivery.next_attempt_at),
        "delivered_at": aware(delivery.delivered_at),
        "last_status_code": delivery.last_status_code,
        "last_error": delivery.last_error,
    }
