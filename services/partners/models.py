"""Tables of the partners service: the directory, API keys, webhook subscriptions and deliveries."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from chassis.audit import define_access_log_table
from chassis.db import new_metadata
from chassis.outbox import define_messaging_tables


class Base(DeclarativeBase):
    metadata = new_metadata()


messaging = define_messaging_tables(Base.metadata)
#: Who read which person's data, what and why (``chassis.audit``).
access_log = define_access_log_table(Base.metadata)


class Partner(Base):
    """An organisation (HSDS ``organization``) with its locations and functional contact points."""

    __tablename__ = "partners"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    alternate_name: Mapped[str | None] = mapped_column(String(200))
    category: Mapped[str] = mapped_column(String(40), index=True)
    description: Mapped[str | None] = mapped_column(Text)
    website: Mapped[str | None] = mapped_column(String(500))
    languages: Mapped[list[str]] = mapped_column(JSON)
    #: HSDS ``location`` entries: name, address, opening hours (public places, no people).
    locations: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    #: HSDS ``contact`` entries: functional contact points (an office, a hotline), never a named person.
    contacts: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class PartnerService(Base):
    """A service the partner offers (HSDS ``service``) with its capacity and eligibility."""

    __tablename__ = "partner_services"

    partner_id: Mapped[str] = mapped_column(ForeignKey("partners.id"), primary_key=True)
    service_type: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    eligibility: Mapped[str | None] = mapped_column(String(1000))
    languages: Mapped[list[str]] = mapped_column(JSON)
    response_days: Mapped[int] = mapped_column(Integer, default=5)
    #: None: no limit (a statutory service such as the Jobcenter's).
    free_places: Mapped[int | None] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ApiKey(Base):
    """A partner's API client. The key itself is never stored: only its visible prefix and a peppered hash."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    partner_id: Mapped[str] = mapped_column(ForeignKey("partners.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class WebhookSubscription(Base):
    """A partner's endpoint. Secrets must be usable for signing, so they are encrypted, not hashed."""

    __tablename__ = "webhook_subscriptions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    partner_id: Mapped[str] = mapped_column(ForeignKey("partners.id"), index=True)
    url: Mapped[str] = mapped_column(String(2000))
    description: Mapped[str | None] = mapped_column(String(200))
    event_types: Mapped[list[str]] = mapped_column(JSON)
    secret_encrypted: Mapped[str] = mapped_column(String(300))
    previous_secret_encrypted: Mapped[str | None] = mapped_column(String(300))
    previous_secret_valid_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    active: Mapped[bool] = mapped_column(Boolean, default=True, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class WebhookDelivery(Base):
    """One event for one subscription; its id is the stable ``webhook-id`` of every attempt."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("subscription_id", "event_id", name="uq_webhook_deliveries_event"),
        UniqueConstraint("subscription_id", "fact_id", name="uq_webhook_deliveries_fact"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    subscription_id: Mapped[str] = mapped_column(ForeignKey("webhook_subscriptions.id"), index=True)
    partner_id: Mapped[str] = mapped_column(String(64), index=True)
    event_id: Mapped[str] = mapped_column(String(200))
    #: The fact the event tells, whatever its ce_id (a referral event's ``fact_id``, else the ce_id): one delivery
    #: per fact and subscription, also when a producer published the fact again under a new ce_id.
    fact_id: Mapped[str | None] = mapped_column(String(200))
    event_type: Mapped[str] = mapped_column(String(200))
    #: The exact body, so that every retry sends (and signs) the same bytes; emptied once the person it concerns
    #: was erased and the delivery is over (``erased_at``).
    payload: Mapped[str] = mapped_column(Text)
    #: The pseudonymous person the event is about (referral events name one), to find the deliveries to erase.
    person_id: Mapped[str | None] = mapped_column(String(64), index=True)
    erased_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(20), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    replays: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    #: Start of the current 24-hour retry window (a replay starts a new one).
    first_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(300))


class ErasedPerson(Base):
    """A person registration erased (GDPR Art. 17): a delivery about them that is still under way (the referral's
    revocation, which the partner must get) is emptied as soon as it is over."""

    __tablename__ = "erased_persons"

    person_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    erased_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class MeetingOffer(Base):
    """A meeting place or recurring offer (Begegnung) a partner or the city publishes: public, no personal data."""

    __tablename__ = "meeting_offers"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    partner_id: Mapped[str] = mapped_column(ForeignKey("partners.id"), index=True)
    kind: Mapped[str] = mapped_column(String(40), index=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    languages: Mapped[list[str]] = mapped_column(JSON)
    audience: Mapped[str] = mapped_column(String(40))
    #: When it meets, as said to people ("jeden Dienstag, 18 bis 20 Uhr"): recurring offers have no end.
    schedule: Mapped[str | None] = mapped_column(String(300))
    place_name: Mapped[str] = mapped_column(String(200))
    address: Mapped[str | None] = mapped_column(String(200))
    district: Mapped[str | None] = mapped_column(String(100))
    childcare: Mapped[bool] = mapped_column(Boolean, default=False)
    free_of_charge: Mapped[bool] = mapped_column(Boolean, default=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
