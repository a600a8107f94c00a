"""Partner network rules: the directory's changes, API keys, webhook signatures, retry schedule, webhook URL safety.

Pure: no I/O, no framework. Randomness comes from :mod:`secrets` (the CSPRNG), time is
passed in, and name resolution is the caller's job (it hands in the resolved addresses).
A change of the directory returns the new state and the facts that happened (:data:`Fact`); the workflow stores
the one and publishes the others as events. A refusal is a :class:`Refusal` (the workflow maps it to an answer).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

# The meeting offers' kinds and audiences are the platform's vocabulary (the public pages offer them).
from contracts.vocabulary import MeetingAudience as MeetingAudience
from contracts.vocabulary import MeetingKind as MeetingKind

# --- refusals ---------------------------------------------------------------------------------


class Refusal(Exception):
    """A rule says no; the message says why (mapped to an answer in one place: ``workflow.problem_of``). ``field``:
    the request's field the rule is about, where there is one (the answer locates its error there)."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class NotOffered(Refusal):
    """The partner does not (or no longer) offer the service."""


class AdminOnly(Refusal):
    """Only an admin may do this (e.g. move a partner to another category)."""


class NotEmptied(Refusal):
    """A required field cannot be set to null."""


class NotInFuture(Refusal):
    """A moment that must lie in the future does not."""


# --- the directory: a partner's entry and its services -------------------------------------------


@dataclass(frozen=True)
class ServiceTerms:
    """What a partner offers for one service type (the whole offer: PUT replaces it)."""

    name: str
    description: str | None
    eligibility: str | None
    languages: tuple[str, ...]
    response_days: int
    free_places: int | None


@dataclass(frozen=True)
class Service:
    """One service of a partner as the directory holds it; a withdrawn one is kept inactive."""

    partner_id: str
    service_type: str
    terms: ServiceTerms
    active: bool = True


@dataclass(frozen=True)
class Entry:
    """What the directory announces of a partner's entry (its events carry these)."""

    partner_id: str
    name: str
    category: str
    languages: tuple[str, ...]
    version: int


@dataclass(frozen=True)
class PartnerJoined:
    entry: Entry
    service_types: tuple[str, ...]


@dataclass(frozen=True)
class EntryChanged:
    entry: Entry


@dataclass(frozen=True)
class ServiceOffered:
    service: Service


@dataclass(frozen=True)
class ServiceWithdrawn:
    partner_id: str
    service_type: str


@dataclass(frozen=True)
class CapacityChanged:
    partner_id: str
    service_type: str
    free_places: int | None


#: What happened in the directory; each becomes one event.
Fact = PartnerJoined | EntryChanged | ServiceOffered | ServiceWithdrawn | CapacityChanged

#: A partner's entry fields that cannot be emptied with null (they are required on a new entry).
REQUIRED_ENTRY_FIELDS = frozenset({"name", "category", "languages", "locations", "contacts"})


def join(entry: Entry, services: Iterable[Service]) -> list[Fact]:
    """A new partner with its services: it joined, and it offers each of them."""
    offered = list(services)
    return [
        PartnerJoined(entry=entry, service_types=tuple(s.service_type for s in offered)),
        *(ServiceOffered(service=s) for s in offered),
    ]


def entry_changes(current: Mapping[str, Any], wanted: Mapping[str, Any], *, by_admin: bool) -> dict[str, Any]:
    """The fields of a partner's entry that a PATCH changes: only those that differ (the same entry sent again,
    as a reference-data load does, changes nothing). Refused: a category change by anyone but an admin (consents
    name a category of partner: a partner moving itself would change what they cover), and emptying a required
    field."""
    if "category" in wanted and not by_admin:
        raise AdminOnly("Only an admin changes a partner's category.")
    return _changes(current, wanted, REQUIRED_ENTRY_FIELDS)


def _changes(current: Mapping[str, Any], wanted: Mapping[str, Any], required: frozenset[str]) -> dict[str, Any]:
    """The fields a PATCH changes (only those that differ); a ``required`` one is not emptied."""
    for field, value in wanted.items():
        if value is None and field in required:
            raise NotEmptied(f"{field} cannot be emptied with null.")
    return {field: value for field, value in wanted.items() if current.get(field) != value}


def change_entry(entry: Entry, changed: bool) -> tuple[Entry, list[Fact]]:
    """After a change of the entry (``changed``: something differed): the next version, announced."""
    if not changed:
        return entry, []
    new = replace(entry, version=entry.version + 1)
    return new, [EntryChanged(entry=new)]


def offer(
    current: Service | None, partner_id: str, service_type: str, terms: ServiceTerms
) -> tuple[Service, list[Fact]]:
    """Offer a service or change its terms. The same offer again changes nothing (PUT is idempotent). Referral
    routes on capacity events alone, so a change of the free places is told as that too."""
    if current is not None and current.active and current.terms == terms:
        return current, []
    previous_places = current.terms.free_places if current is not None and current.active else 0
    new = Service(partner_id=partner_id, service_type=service_type, terms=terms, active=True)
    facts: list[Fact] = [ServiceOffered(service=new)]
    if previous_places != terms.free_places:
        facts.append(CapacityChanged(partner_id, service_type, terms.free_places))
    return new, facts


def _offered(current: Service | None, partner_id: str, service_type: str) -> Service:
    if current is None or not current.active:
        raise NotOffered(f"{partner_id} does not offer {service_type}.")
    return current


def withdraw(current: Service | None, partner_id: str, service_type: str) -> tuple[Service, list[Fact]]:
    """Withdraw an offered service. Referral routes on capacity alone: "no free places" keeps it from sending
    people to a withdrawn service."""
    service = _offered(current, partner_id, service_type)
    return replace(service, active=False), [
        ServiceWithdrawn(partner_id, service_type),
        CapacityChanged(partner_id, service_type, 0),
    ]


def change_capacity(
    current: Service | None, partner_id: str, service_type: str, free_places: int | None
) -> tuple[Service, list[Fact]]:
    """Set an offered service's free places; the same value again changes nothing (PUT is idempotent)."""
    service = _offered(current, partner_id, service_type)
    if service.terms.free_places == free_places:
        return service, []
    new = replace(service, terms=replace(service.terms, free_places=free_places))
    return new, [CapacityChanged(partner_id, service_type, free_places)]


def check_expiry(expires_at: datetime | None, now: datetime) -> None:
    """A new API key's expiry, if it has one, lies in the future."""
    if expires_at is not None and expires_at <= now:
        raise NotInFuture("expires_at must lie in the future.", field="expires_at")


#: A meeting offer's fields that cannot be emptied with null.
REQUIRED_MEETING_FIELDS = frozenset(
    {"kind", "title", "languages", "audience", "place_name", "childcare", "free_of_charge"}
)


def meeting_offer_changes(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of a meeting offer a PATCH changes (only those that differ); a required one is not emptied."""
    return _changes(current, wanted, REQUIRED_MEETING_FIELDS)


# --- API keys -------------------------------------------------------------------------------

API_KEY_PREFIX = "lip"  # "Landsberg integration platform": lets secret scanners recognise a leaked key
_KEY_PATTERN = re.compile(r"^lip_(?P<prefix>[0-9a-f]{12})_(?P<secret>[A-Za-z0-9_-]{43})$")


class ApiScope(StrEnum):
    """What a partner's API client may do (checked by the gateway)."""

    REFERRALS_READ = "referrals:read"
    REFERRALS_WRITE = "referrals:write"
    CAPACITY_WRITE = "capacity:write"
    WEBHOOKS_MANAGE = "webhooks:manage"


@dataclass(frozen=True)
class IssuedKey:
    """A new key: ``key`` is shown to the partner once; only ``prefix`` and a hash are kept."""

    key: str
    prefix: str


def issue_api_key() -> IssuedKey:
    # 12 hex digits (48 bits) find the row; 32 random bytes (256 bits) are the secret.
    prefix = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    return IssuedKey(key=f"{API_KEY_PREFIX}_{prefix}_{secret}", prefix=prefix)


def api_key_prefix(key: str) -> str | None:
    """The visible prefix of a well-formed key, else None (no lookup for malformed input)."""
    match = _KEY_PATTERN.fullmatch(key)
    return match["prefix"] if match else None


def hash_api_key(key: str, pepper: bytes) -> str:
    """HMAC-SHA256 with a server-side pepper.

    A slow password hash is not needed: the key has 256 random bits, so a stolen table
    cannot be brute-forced; the pepper (kept outside the database) makes even that moot.
    """
    return hmac.new(pepper, key.encode(), hashlib.sha256).hexdigest()


def api_key_matches(key: str, pepper: bytes, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_api_key(key, pepper), stored_hash)


class KeyRefusal(StrEnum):
    REVOKED = "revoked"
    EXPIRED = "expired"


def key_refusal(*, revoked_at: datetime | None, expires_at: datetime | None, now: datetime) -> KeyRefusal | None:
    """Why a key (whose hash matched) may not be used now, or None when it may."""
    if revoked_at is not None and revoked_at <= now:
        return KeyRefusal.REVOKED
    if expires_at is not None and expires_at <= now:
        return KeyRefusal.EXPIRED
    return None


# --- webhook secrets and signatures (Standard Webhooks) -------------------------------------

WEBHOOK_SECRET_PREFIX = "whsec_"  # noqa: S105 - the format marker of Standard Webhooks secrets


def new_webhook_secret() -> str:
    return WEBHOOK_SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def _secret_bytes(secret: str) -> bytes:
    raw = secret.removeprefix(WEBHOOK_SECRET_PREFIX)
    return base64.b64decode(raw + "=" * (-len(raw) % 4))


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`` keyed by the decoded secret."""
    to_sign = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(_secret_bytes(secret), to_sign, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signing_secrets(
    current: str, previous: str | None, previous_valid_until: datetime | None, now: datetime
) -> list[str]:
    """After a rotation the old secret still signs for a grace period, so receivers can switch over."""
    if previous is not None and previous_valid_until is not None and now < previous_valid_until:
        return [current, previous]
    return [current]


def webhook_headers(secrets_in_use: Iterable[str], msg_id: str, now: datetime, body: bytes) -> dict[str, str]:
    timestamp = int(now.timestamp())
    signatures = " ".join(sign(secret, msg_id, timestamp, body) for secret in secrets_in_use)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signatures,
        "content-type": "application/json",
    }


def webhook_body(*, event_type: str, event_id: str, time: str, data: Mapping[str, Any]) -> dict[str, Any]:
    return {"type": event_type, "id": event_id, "time": time, "data": dict(data)}


def concerned_partner(data: Mapping[str, Any]) -> str | None:
    """The partner an event concerns: the one it names (a referral addressed to it, its own entry)
    or the one that runs it (a course it provides)."""
    partner = data.get("partner_id") or data.get("provider_id")
    return partner if isinstance(partner, str) else None


def concerns(data: Mapping[str, Any], partner_id: str) -> bool:
    return concerned_partner(data) == partner_id


# --- delivery schedule ----------------------------------------------------------------------


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"
    CANCELLED = "cancelled"  # the subscription was deleted before it got through


@dataclass(frozen=True)
class RetryPolicy:
    initial: timedelta = timedelta(seconds=5)
    maximum: timedelta = timedelta(hours=1)
    give_up_after: timedelta = timedelta(hours=24)

    def delay(self, attempts: int) -> timedelta:
        """Wait after the ``attempts``-th failed attempt: initial, doubling, capped."""
        if attempts < 1:
            return timedelta()
        # Cap the exponent too: 2**attempts would grow without bound for a long-failing receiver.
        factor: int = 2 ** min(attempts - 1, 40)
        delay: timedelta = self.initial * factor
        return min(delay, self.maximum)

    def next_attempt(self, *, attempts: int, first_attempt_at: datetime, now: datetime) -> datetime | None:
        """When to try again after ``attempts`` failures, or None: give up (the 24 hours are over)."""
        deadline = first_attempt_at + self.give_up_after
        if now >= deadline:
            return None
        # The last try happens at the deadline rather than being skipped because the delay overshoots it.
        return min(now + self.delay(attempts), deadline)


def is_success(status_code: int) -> bool:
    """Standard Webhooks: any 2xx is an acknowledgement; redirects are not followed and count as failures."""
    return 200 <= status_code < 300


# --- webhook URL safety (SSRF) --------------------------------------------------------------


class UnsafeWebhookUrl(ValueError):
    """The URL may not receive webhooks; the message says why."""


MAX_URL_LENGTH = 2000
_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}


def _is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 is loopback in disguise
    return address.is_global and not address.is_multicast


def ip_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


@dataclass(frozen=True)
class WebhookTarget:
    url: str
    host: str
    port: int


def parse_webhook_url(url: str, *, allow_private: bool) -> WebhookTarget:
    """Check what can be checked without the network: scheme, credentials, host, IP literals."""
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeWebhookUrl(f"the URL is longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeWebhookUrl(f"not a valid URL: {exc}") from exc
    allowed_schemes = {"https", "http"} if allow_private else {"https"}
    if parts.scheme not in allowed_schemes:
        raise UnsafeWebhookUrl(f"the scheme must be {' or '.join(sorted(allowed_schemes))}")
    if parts.username is not None or parts.password is not None:
        raise UnsafeWebhookUrl("credentials in the URL are not allowed; authenticate by the signature")
    if parts.fragment:
        raise UnsafeWebhookUrl("a fragment is never sent; remove it")
    host = (parts.hostname or "").lower()
    if not host:
        raise UnsafeWebhookUrl("the URL names no host")
    if not allow_private:
        literal = ip_literal(host)
        if literal is not None and not _is_public(literal):
            raise UnsafeWebhookUrl(f"{literal} is a private, loopback or otherwise non-public address")
        if literal is None and (host in _LOCAL_NAMES or host.endswith((".localhost", ".local", ".internal"))):
            raise UnsafeWebhookUrl(f"{host} names a local host")
    return WebhookTarget(url=url, host=host, port=port or (443 if parts.scheme == "https" else 80))


def check_resolved_addresses(host: str, addresses: Iterable[str], *, allow_private: bool) -> None:
    """Every address the host resolves to must be public; one private answer is enough to refuse.

    (A name with a public and a private address would let the connection pick the private one.)
    """
    found = list(addresses)
    if not found:
        raise UnsafeWebhookUrl(f"{host} does not resolve")
    if allow_private:
        return
    for text in found:
        address = ip_literal(text.split("%", 1)[0])  # drop an IPv6 zone index
        if address is None or not _is_public(address):
            raise UnsafeWebhookUrl(f"{host} resolves to {text}, a private, loopback or non-public address")


# --- meeting offers (Begegnung) -------------------------------------------------------------


def speaks(languages: Iterable[str], language: str) -> bool:
    """Whether one of ``languages`` is ``language``, by primary subtag (``uk`` finds ``uk-UA``, and the reverse)."""
    return language.split("-")[0].lower() in {x.split("-")[0].lower() for x in languages}


def meeting_offer_matches(
    languages: Iterable[str],
    kind: str,
    audience: str,
    *,
    language: str | None = None,
    wanted_kind: str | None = None,
    wanted_audience: str | None = None,
) -> bool:
    """A public filter: an offer held in the wanted language (``uk`` finds ``uk-UA``), of the wanted kind and
    audience; an omitted filter does not restrict."""
    if language is not None and not speaks(languages, language):
        return False
    if wanted_kind is not None and kind != wanted_kind:
        return False
    return wanted_audience is None or audience == wanted_audience
