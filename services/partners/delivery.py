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
from datetime import datetime, timedelta
from typing import Any

import httpx
from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

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
        self.clock = clock
        self.secret_box = secret_box
        self.policy = policy
        self.allow_private = allow_private
        self.poll_seconds = poll_seconds
        self.claim = timedelta(seconds=claim_seconds)
        self.batch_size = batch_size
        self._limit = asyncio.Semaphore(concurrency)
        self._wake = asyncio.Event()
        # One pooled client for every delivery; redirects are not followed (a 3xx is a failure),
        # which also keeps a receiver from bouncing us to an internal address.
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

    def wake_soon(self, delay: float = 0.05) -> None:
        """For handlers: their transaction commits just after they return, so look a moment later."""
        asyncio.get_running_loop().call_later(delay, self._wake.set)

    async def run(self) -> None:
        try:
            while True:
                try:
                    attempted = await self.deliver_due()
                except Exception:
                    log.exception("webhook delivery round failed; trying again next round")
                    attempted = 0
                if attempted >= self.batch_size:
                    continue  # there may be more due behind this batch
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
                self._wake.clear()
        finally:
            await self.client.aclose()

    async def deliver_due(self) -> int:
        now = self.clock()
        async with self.session_factory() as session:
            due = (
                await session.execute(
                    select(WebhookDelivery.id, WebhookDelivery.attempts)
                    .where(
                        WebhookDelivery.status == domain.DeliveryStatus.PENDING.value,
                        WebhookDelivery.next_attempt_at <= now,
                    )
                    .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
                    .limit(self.batch_size)
                )
            ).all()
        claimed = [row.id for row in due if await self._claim(row.id, row.attempts, now)]
        outcomes = await asyncio.gather(*(self._attempt(d) for d in claimed), return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                # The claim runs out and the row is tried again; one bad row never stops the others.
                log.error("webhook attempt crashed: %s", outcome, exc_info=outcome)
        return len(claimed)

    async def _claim(self, delivery_id: str, attempts: int, now: datetime) -> bool:
        async with self.session_factory() as session, session.begin():
            result = await session.execute(
                update(WebhookDelivery)
                .where(
                    WebhookDelivery.id == delivery_id,
                    WebhookDelivery.status == domain.DeliveryStatus.PENDING.value,
                    WebhookDelivery.attempts == attempts,  # nobody else claimed it meanwhile
                )
                .values(attempts=attempts + 1, next_attempt_at=now + self.claim)
            )
            return bool(getattr(result, "rowcount", 0) == 1)

    async def _attempt(self, delivery_id: str) -> None:
        async with self._limit:
            async with self.session_factory() as session:
                delivery = await session.get(WebhookDelivery, delivery_id)
                subscription = await session.get(WebhookSubscription, delivery.subscription_id) if delivery else None
            if delivery is None or subscription is None:
                return
            if not subscription.active:
                await self._record(delivery_id, cancelled=True)
                return
            now = self.clock()
            status_code: int | None = None
            error: str | None = None
            try:
                await check_url(subscription.url, allow_private=self.allow_private)
                signing = domain.signing_secrets(
                    self.secret_box.open(subscription.secret_encrypted),
                    self.secret_box.open(subscription.previous_secret_encrypted)
                    if subscription.previous_secret_encrypted
                    else None,
                    aware(subscription.previous_secret_valid_until),
                    now,
                )
                body = delivery.payload.encode()
                headers = domain.webhook_headers(signing, delivery.id, now, body)
                reply = await self.client.post(subscription.url, content=body, headers=headers)
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
            await self._record(delivery_id, attempted_at=now, status_code=status_code, error=error)

    async def _record(
        self,
        delivery_id: str,
        *,
        attempted_at: datetime | None = None,
        status_code: int | None = None,
        error: str | None = None,
        cancelled: bool = False,
    ) -> None:
        async with self.session_factory() as session, session.begin():
            delivery = await session.get(WebhookDelivery, delivery_id)
            if delivery is None:
                return
            self._outcome(
                delivery, attempted_at=attempted_at, status_code=status_code, error=error, cancelled=cancelled
            )
            await erase_when_over(session, delivery, self.clock())

    def _outcome(
        self,
        delivery: WebhookDelivery,
        *,
        attempted_at: datetime | None,
        status_code: int | None,
        error: str | None,
        cancelled: bool,
    ) -> None:
        delivery_id = delivery.id
        if cancelled:
            delivery.status = domain.DeliveryStatus.CANCELLED.value
            delivery.next_attempt_at = None
            return
        assert attempted_at is not None
        delivery.last_attempt_at = attempted_at
        delivery.first_attempt_at = aware(delivery.first_attempt_at) or attempted_at
        delivery.last_status_code = status_code
        if error is None:
            delivery.status = domain.DeliveryStatus.DELIVERED.value
            delivery.delivered_at = attempted_at
            delivery.next_attempt_at = None
            delivery.last_error = None
            self.delivered_total += 1
            log.info("webhook %s delivered (HTTP %s)", delivery_id, status_code)
            return
        self.failed_attempts_total += 1
        delivery.last_error = error[:300]
        next_at = self.policy.next_attempt(
            attempts=delivery.attempts, first_attempt_at=delivery.first_attempt_at, now=attempted_at
        )
        if next_at is None:
            delivery.status = domain.DeliveryStatus.FAILED.value
            delivery.next_attempt_at = None
            log.warning("webhook %s failed for good after %d attempts", delivery_id, delivery.attempts)
        else:
            delivery.next_attempt_at = next_at
            log.info("webhook %s attempt %d failed (%s); next at %s", delivery_id, delivery.attempts, error, next_at)


def erased_columns(now: datetime) -> dict[str, Any]:
    """What a finished delivery about an erased person keeps: its log entry, not the payload or the person."""
    return {"payload": "", "person_id": None, "erased_at": now}


async def erase_when_over(session: AsyncSession, delivery: WebhookDelivery, now: datetime) -> None:
    """Empty a delivery that is over and concerns an erased person (handlers.person_erased empties the others)."""
    if delivery.person_id is None or delivery.status == domain.DeliveryStatus.PENDING.value:
        return
    await session.flush()  # holds the row: an erasure now under way waits, then sees the delivery over
    if await session.get(ErasedPerson, delivery.person_id) is not None:
        for column, value in erased_columns(now).items():
            setattr(delivery, column, value)


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
