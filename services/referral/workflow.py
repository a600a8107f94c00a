"""The referral service's use cases, shared by the HTTP routes and the event handlers.

Each function takes a :class:`Workflow` (the unit of work, the moment and the
settings), asks :mod:`domain` what happens, stores the result and publishes the
events in the same transaction (cosmicpython's service layer).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, false, func, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from chassis.clock import as_utc as aware
from chassis.uow import UnitOfWork
from contracts import referral as events
from contracts.base import IntegrationEvent
from contracts.vocabulary import ConsentPurpose, EsserDimension, PartnerCategory, ServiceType
from services.referral import directory, domain
from services.referral.models import (
    Case,
    CaseMember,
    CaseworkerRow,
    Goal,
    KnownConsent,
    KnownPerson,
    PartnerOfferRow,
    Referral,
    RuleSetVersion,
    TimelineEntry,
)

CONSENT_MISSING = domain.Blocked(domain.Waiting.CONSENT_MISSING)
TIMELINE = cast(Table, TimelineEntry.__table__)


@dataclass
class Workflow:
    uow: UnitOfWork
    now: datetime
    expiry_days: int = 10
    holidays: frozenset[date] = frozenset()
    #: Who acts, for the timeline ("user:lotse"); none for what events and clocks do.
    actor: str | None = None

    @property
    def session(self) -> AsyncSession:
        return self.uow.session

    async def publish(self, event: IntegrationEvent) -> None:
        await self.uow.publish(event)
        await record_timeline(self, event)


async def record_timeline(
    w: Workflow, event: IntegrationEvent, *, event_id: str | None = None, source: str = "/services/referral"
) -> None:
    person_id = getattr(event, "person_id", None)
    if person_id is None:
        return
    data = event.model_dump(mode="json")
    entry = {
        "person_id": person_id,
        "event_id": event_id or f"local-{uuid.uuid4()}",
        "event_type": event.event_type,
        "source": source,
        "at": w.now,
        "summary": {k: v for k, v in data.items() if k not in ("person_id", "matched_facts")}
        | ({"by": w.actor} if w.actor and source == "/services/referral" else {}),
    }
    # Held for one insert with the unit of work's others at its commit, not an ORM row each (a registration's three
    # entries were a quarter of the referral consumer's CPU). Nothing reads them back before the commit but an
    # erasure's redaction (handlers._redact_timeline), which sees them through the unit of work.
    w.uow.insert_at_commit(TIMELINE, entry["event_id"], entry)


# --- reading what the events told us ---------------------------------------------------------


def person_facts(person: KnownPerson) -> domain.PersonFacts | None:
    """The facts routing needs, once both the profile and a needs assessment are known."""
    if person.profile is None or person.needs is None:
        return None
    profile, needs = person.profile, person.needs
    return domain.PersonFacts(
        age_band=profile["age_band"],
        gender=profile["gender"],
        residence_status_group=profile["residence_status_group"],
        languages=tuple(profile.get("languages", ())),
        preferred_language=profile.get("preferred_language", "de"),
        district=profile.get("district"),
        german_level=needs.get("german_level"),
        need_categories=frozenset(needs.get("need_categories", ())),
        employment_situation=needs.get("employment_situation"),
        childcare_needed=needs.get("childcare_needed", False),
        has_children=bool(needs.get("children_age_bands")),
    )


async def active_rules(session: AsyncSession) -> tuple[int, domain.RuleSet]:
    row = await session.scalar(select(RuleSetVersion).order_by(RuleSetVersion.version.desc()).limit(1))
    if row is None:
        return 0, directory.DEFAULT_RULES
    return row.version, domain.RuleSet.model_validate({"rules": row.rules})


#: Keys of :attr:`UnitOfWork.cache` for what routing reads once per unit of work (a batch of events routes many
#: referrals): the rules in force, and the partner offers' rows. A handler that adds or removes an offer row forgets
#: the latter (:func:`forget_offers`); the rows are the session's own, so a place taken meanwhile shows.
RULES_CACHE, OFFERS_CACHE = "referral.rules", "referral.offer_rows"


async def routing_rules(w: Workflow) -> tuple[int, domain.RuleSet]:
    """:func:`active_rules`, read and validated once per unit of work (it was a query and a validation of the whole
    rule set per routed event)."""
    cached: tuple[int, domain.RuleSet] | None = w.uow.cache.get(RULES_CACHE)
    if cached is None:
        cached = w.uow.cache[RULES_CACHE] = await active_rules(w.session)
    return cached


async def _offer_rows(w: Workflow) -> list[PartnerOfferRow]:
    rows: list[PartnerOfferRow] | None = w.uow.cache.get(OFFERS_CACHE)
    if rows is None:
        rows = w.uow.cache[OFFERS_CACHE] = list((await w.session.scalars(select(PartnerOfferRow))).all())
    return rows


def forget_offers(uow: UnitOfWork) -> None:
    """An offer row was added, removed or changed by a bulk update: routing reads them again."""
    uow.cache.pop(OFFERS_CACHE, None)


async def partner_offers(session: AsyncSession) -> list[domain.PartnerOffer]:
    return offers_of((await session.scalars(select(PartnerOfferRow))).all())


def offers_of(rows: Sequence[PartnerOfferRow]) -> list[domain.PartnerOffer]:
    return [
        domain.PartnerOffer(
            partner_id=r.partner_id,
            partner_category=PartnerCategory(r.partner_category),
            service_type=ServiceType(r.service_type),
            free_places=r.free_places,
            languages=frozenset(r.languages),
            response_days=r.response_days,
        )
        for r in rows
    ]


async def consents_of(session: AsyncSession, person_id: str) -> list[domain.ConsentRecord]:
    rows = (await session.scalars(select(KnownConsent).where(KnownConsent.person_id == person_id))).all()
    return [
        domain.ConsentRecord(
            consent_id=r.consent_id,
            partner_id=r.partner_id,
            partner_category=PartnerCategory(r.partner_category) if r.partner_category else None,
            purpose=ConsentPurpose(r.purpose),
            given_at=aware(r.given_at),  # type: ignore[arg-type]
            expires_on=r.expires_on,
            withdrawn_at=aware(r.withdrawn_at),
        )
        for r in rows
        if r.given_at is not None and r.purpose is not None  # a withdrawal seen before its consent
    ]


# --- who sees which case -----------------------------------------------------------------------


@dataclass(frozen=True)
class CaseScope:
    """The cases a caller may see and act on (issue 6: the caseworker's team owns the case).

    ``everything`` for an admin, and for a call that carries no identity at all (development and
    tests reaching the service directly where the signed identity is not required). Otherwise the
    cases of ``team``, or, for a caseworker without a team, only those assigned to ``caseworker_id``.
    """

    everything: bool = False
    team: str | None = None
    caseworker_id: str | None = None

    def admits(self, case: Case) -> bool:
        if self.everything:
            return True
        if self.team is not None:
            return case.team == self.team
        return self.caseworker_id is not None and case.caseworker_id == self.caseworker_id

    def cases(self) -> ColumnElement[bool]:
        """The same rule as a condition on ``Case``."""
        if self.everything:
            return true()
        if self.team is not None:
            return Case.team == self.team
        if self.caseworker_id is None:
            return false()  # never "caseworker_id IS NULL": that would be the unassigned cases
        return Case.caseworker_id == self.caseworker_id

    def referrals(self) -> ColumnElement[bool]:
        """A condition on ``Referral``: its case is in scope."""
        if self.everything:
            return true()
        return Referral.case_id.in_(select(Case.id).where(self.cases()))


class NotACaseReader(Exception):
    """The caller has a forwarded identity but neither the caseworker nor the admin role."""


def case_scope(roles: str | None, team: str | None, actor: str | None) -> CaseScope:
    """The scope from the plain identity headers (``X-Role``, ``X-Team``, ``X-Actor``) the service's
    identity middleware rewrote from the gateway's signed token.

    No roles header at all means no identity was forwarded: today's open behaviour, for development
    and tests (production refuses such calls before they get here). A caseworker's user subject is
    the ``X-Actor`` without its ``user:`` kind; that is what ``Case.caseworker_id`` holds for them.
    """
    if roles is None:
        return CaseScope(everything=True)
    granted = {role.strip() for role in roles.split(",") if role.strip()}
    if "admin" in granted:
        return CaseScope(everything=True)
    if "caseworker" not in granted:
        raise NotACaseReader(f"roles {sorted(granted)}")
    if team:
        return CaseScope(team=team)
    subject = actor.removeprefix("user:") if actor and actor.startswith("user:") else None
    return CaseScope(caseworker_id=subject or None)


# --- what a consumer's batch of events needs, loaded at once ------------------------------------
#
# A backlog of registrations cost about fifteen round trips to the database per event, most of them lookups of one
# row each (the person, their case, their household's open case, the roster's workload). A consumer handling a batch
# (``UnitOfWork.batch``) loads those rows for all its events in four queries; the lookups below then find them in
# the session's identity map, or know that they do not exist. Outside a batch they query as before.


async def prefetch(uow: UnitOfWork) -> None:
    """Load the people of the batch's events, their case memberships and cases, and their households' open
    cases, once per batch (again after a savepoint was rolled back, which empties the cache)."""
    if not uow.batch or "household_case" in uow.cache:
        return
    person_ids = {str(e.data["person_id"]) for e in uow.batch if e.data.get("person_id")}
    household_ids = {str(e.data["household_id"]) for e in uow.batch if e.data.get("household_id")}
    await uow.load(KnownPerson, person_ids)
    members = await uow.load(CaseMember, person_ids)
    await uow.load(Case, {m.case_id for m in members})
    household_cases: dict[str, Case | None] = dict.fromkeys(household_ids)
    if household_ids:
        open_cases = await uow.session.scalars(
            select(Case)
            .where(Case.household_id.in_(household_ids), Case.status == domain.CaseStatus.OPEN.value)
            .order_by(Case.opened_at.desc())
        )
        household_cases.update({c.household_id: c for c in open_cases.all() if c.household_id})  # earliest wins
    uow.cache["household_case"] = household_cases


# --- cases -----------------------------------------------------------------------------------


async def case_of(session: AsyncSession, person_id: str, uow: UnitOfWork | None = None) -> Case | None:
    """The case the person belongs to (their household's), if any; ``uow`` to use what its batch loaded."""
    if uow is not None and "household_case" in uow.cache:
        member = await uow.get(CaseMember, person_id)
        return None if member is None else await uow.get(Case, member.case_id)
    return await session.scalar(
        select(Case).join(CaseMember, CaseMember.case_id == Case.id).where(CaseMember.person_id == person_id)
    )


async def open_household_case(w: Workflow, household_id: str) -> Case | None:
    """The household's earliest open case, if any (from what the batch loaded when it can)."""
    cached: dict[str, Case | None] = w.uow.cache.get("household_case", {})
    if household_id in cached:
        case = cached[household_id]
        if case is None or (case.status == domain.CaseStatus.OPEN.value and case.household_id == household_id):
            return case
    return await w.session.scalar(
        select(Case)
        .where(Case.household_id == household_id, Case.status == domain.CaseStatus.OPEN.value)
        .order_by(Case.opened_at)
        .limit(1)
    )


async def members_of(session: AsyncSession, case_id: str) -> list[CaseMember]:
    return list(
        (
            await session.scalars(
                select(CaseMember).where(CaseMember.case_id == case_id).order_by(CaseMember.joined_at)
            )
        ).all()
    )


def _band(person: KnownPerson | None) -> str | None:
    return (person.profile or {}).get("age_band") if person is not None else None


async def open_case(w: Workflow, person: KnownPerson) -> Case:
    """Every registered newcomer belongs to a case: their household's open case if it has one (``domain``'s
    household rule), else a new one with, if the roster has room, a caseworker."""
    case = await case_of(w.session, person.person_id, w.uow)
    if case is not None and (person.household_id is None or case.household_id in (None, person.household_id)):
        return case
    if case is not None:  # the person moved into another household: they go with it
        await leave_case(w, person.person_id)
    if person.household_id is not None:
        household_case = await open_household_case(w, person.household_id)
        if household_case is not None:
            await join_case(w, household_case, person)
            return household_case
    case = Case(
        id=str(uuid.uuid4()),
        person_id=person.person_id,
        household_id=person.household_id,
        status=domain.CaseStatus.OPEN.value,
        opened_at=w.now,
    )
    w.session.add(case)
    w.session.add(CaseMember(person_id=person.person_id, case_id=case.id, joined_at=w.now))
    if person.household_id is not None and "household_case" in w.uow.cache:
        w.uow.cache["household_case"][person.household_id] = case  # the next member in the batch joins it
    await w.publish(
        events.CaseOpened(
            case_id=case.id, person_id=person.person_id, household_id=person.household_id or "", opened_at=w.now
        )
    )
    profile = person.profile or {}
    chosen = domain.assign_caseworker(
        await cached_roster(w), profile.get("languages", []), profile.get("preferred_language")
    )
    await assign(w, case, chosen.id if chosen else None, chosen.team if chosen else None, assigned_by="routing")
    return case


async def join_case(w: Workflow, case: Case, person: KnownPerson) -> None:
    """A household member joins the household's case; an adult takes the lead where a child had it. Registration
    needs no event: it knows the households, and a case's team reaches its household's members."""
    w.session.add(CaseMember(person_id=person.person_id, case_id=case.id, joined_at=w.now))
    lead = await w.session.get(KnownPerson, case.person_id)
    if domain.takes_the_lead(_band(lead), _band(person)):
        case.person_id = person.person_id
    await w.session.flush()


async def leave_case(w: Workflow, person_id: str) -> Case | None:
    """The person leaves their case (moved away, erased, into another household). The household's case goes on for
    the others, led by the first adult who stays; returns the case when nobody stays (the caller closes it)."""
    case = await case_of(w.session, person_id)
    if case is None:
        return None
    member = await w.session.get(CaseMember, person_id)
    staying = [m for m in await members_of(w.session, case.id) if m.person_id != person_id]
    if not staying:
        return case  # the last member: the case stays theirs, closed by the caller
    if member is not None:
        await w.session.delete(member)
    if case.person_id == person_id:
        known = {p.person_id: p for p in await known_persons(w.session, [m.person_id for m in staying])}
        lead = domain.next_lead([(m.person_id, _band(known.get(m.person_id))) for m in staying])
        if lead is not None:
            case.person_id = lead
    await w.session.flush()
    return None


async def known_persons(session: AsyncSession, person_ids: list[str]) -> list[KnownPerson]:
    if not person_ids:
        return []
    return list((await session.scalars(select(KnownPerson).where(KnownPerson.person_id.in_(person_ids)))).all())


async def roster(session: AsyncSession) -> list[domain.Caseworker]:
    open_cases = dict(
        (
            await session.execute(
                select(Case.caseworker_id, func.count())
                .where(Case.status == domain.CaseStatus.OPEN.value, Case.caseworker_id.is_not(None))
                .group_by(Case.caseworker_id)
            )
        ).all()
    )
    rows = (await session.scalars(select(CaseworkerRow).where(CaseworkerRow.active.is_(True)))).all()
    return [
        domain.Caseworker(
            id=r.id,
            team=r.team,
            languages=frozenset(r.languages),
            max_cases=r.max_cases,
            open_cases=int(open_cases.get(r.id, 0)),
        )
        for r in rows
    ]


async def cached_roster(w: Workflow) -> list[domain.Caseworker]:
    """The roster with each caseworker's open cases, counted once per unit of work (a count over all open cases,
    the costliest query of a registration's handling) and kept up to date by :func:`assign` and :func:`close`."""
    cached: dict[str, domain.Caseworker] | None = w.uow.cache.get("roster")
    if cached is None:
        cached = w.uow.cache["roster"] = {c.id: c for c in await roster(w.session)}
    return list(cached.values())


def _count_open_case(w: Workflow, caseworker_id: str | None, change: int) -> None:
    cached: dict[str, domain.Caseworker] | None = w.uow.cache.get("roster")
    if cached is not None and caseworker_id in cached:
        worker = cached[caseworker_id]
        cached[caseworker_id] = replace(worker, open_cases=worker.open_cases + change)


async def assign(w: Workflow, case: Case, caseworker_id: str | None, team: str | None, *, assigned_by: str) -> None:
    if case.status == domain.CaseStatus.OPEN.value:
        _count_open_case(w, case.caseworker_id, -1)
        _count_open_case(w, caseworker_id, +1)
    case.caseworker_id = caseworker_id
    case.team = team
    await w.publish(
        events.CaseAssigned(
            case_id=case.id, person_id=case.person_id, caseworker_id=caseworker_id, team=team, assigned_by=assigned_by
        )
    )


async def close_case(w: Workflow, person_id: str, reason: domain.CaseCloseReason) -> Case | None:
    """What registration told (a move away, an erasure) takes the person out of their household's case; the case
    closes when they were its last member. Returns the case when it closed."""
    household_case = await case_of(w.session, person_id)
    case = await leave_case(w, person_id)
    if case is None:
        if household_case is not None:  # the others' case goes on; nobody is to contact this person any more
            for referral in await open_referrals(w.session, household_case.id, person_id=person_id):
                await act(w, referral, domain.ReferralAction.REVOKE)
        return None
    await close(w, case, reason, by=None)
    return case


async def open_referrals(session: AsyncSession, case_id: str, *, person_id: str | None = None) -> list[Referral]:
    terminal = [s.value for s in domain.TERMINAL]
    query = select(Referral).where(Referral.case_id == case_id, Referral.status.not_in(terminal))
    if person_id is not None:
        query = query.where(Referral.person_id == person_id)
    return list((await session.scalars(query)).all())


def case_state(case: Case) -> domain.CaseState:
    return domain.CaseState(
        domain.CaseStatus(case.status), domain.CaseCloseReason(case.close_reason) if case.close_reason else None
    )


async def close(w: Workflow, case: Case, reason: domain.CaseCloseReason, *, by: str | None) -> None:
    """Close the case (a caseworker's closing names ``by``) and revoke what is still open of its referrals."""
    state, facts = domain.close_case(case_state(case), reason, at=w.now, by=by)
    for fact in facts:
        if case.status == domain.CaseStatus.OPEN.value:
            _count_open_case(w, case.caseworker_id, -1)
        case.status = state.status.value
        case.closed_at = fact.at
        case.close_reason = fact.reason.value
        await w.publish(
            events.CaseClosed(
                case_id=case.id, person_id=case.person_id, reason=fact.reason.value, closed_at=fact.at, closed_by=by
            )
        )
        # Nobody is to be contacted any more: partners learn it by the revocation event.
        for referral in await open_referrals(w.session, case.id):
            await act(w, referral, domain.ReferralAction.REVOKE)


async def reopen(w: Workflow, case: Case, *, by: str) -> None:
    """Open a closed case again, with the team and caseworker it had (raises ``domain.CaseError``)."""
    person = await w.session.get(KnownPerson, case.person_id)
    registered = person is not None and person.status == "registered"
    state, facts = domain.reopen_case(case_state(case), person_registered=registered, at=w.now, by=by)
    for fact in facts:
        if case.status != domain.CaseStatus.OPEN.value:
            _count_open_case(w, case.caseworker_id, +1)
        case.status = state.status.value
        case.closed_at = None
        case.close_reason = None
        await w.publish(
            events.CaseReopened(
                case_id=case.id,
                person_id=case.person_id,
                reopened_at=fact.at,
                reopened_by=fact.by,
                caseworker_id=case.caseworker_id,
                team=case.team,
            )
        )


# --- routing and sending -----------------------------------------------------------------------


async def route(w: Workflow, person: KnownPerson) -> list[Referral]:
    """Propose referrals for what the rules find, and send those that may go. Idempotent."""
    facts = person_facts(person)
    if facts is None or person.status != "registered":
        return []
    case = await open_case(w, person)
    if case.status != domain.CaseStatus.OPEN.value:
        return []
    version, rules = await routing_rules(w)
    # Each member's own needs: a household's two adults may both need a language course.
    existing = (
        await w.session.scalars(
            select(Referral).where(Referral.case_id == case.id, Referral.person_id == person.person_id)
        )
    ).all()
    covered = {r.service_type for r in existing if domain.ReferralStatus(r.status) not in domain.TERMINAL}
    created = []
    for proposal in domain.propose(rules, facts):
        if proposal.service_type.value in covered:
            continue
        referral = Referral(
            id=str(uuid.uuid4()),
            case_id=case.id,
            person_id=person.person_id,
            service_type=proposal.service_type.value,
            rule_id=proposal.rule_id,
            rule_set_version=version,
            matched_facts=proposal.matched_facts,
            purpose=proposal.purpose.value,
            shares_personal_data=proposal.shares_personal_data,
            status=domain.ReferralStatus.PROPOSED.value,
            created_at=w.now,
            updated_at=w.now,
        )
        w.session.add(referral)  # inserted with the others at the next flush: one statement, not one each
        await w.publish(
            events.ReferralProposed(
                **referral_ids(referral, w.now),
                rule_id=proposal.rule_id,
                matched_facts=proposal.matched_facts,
                purpose=proposal.purpose,
            )
        )
        created.append(referral)
    consents: list[domain.ConsentRecord] | None = None  # read once for all the person's new referrals
    for referral in created:
        if referral.shares_personal_data and consents is None:
            consents = await consents_of(w.session, person.person_id)
        await try_send(w, referral, languages=facts.languages, consents=consents)
    return created


def referral_ids(referral: Referral, at: datetime) -> dict[str, Any]:
    """The ids every referral event carries. The partner only once the referral was sent to it: the partners
    service routes an event to the partner it names (webhooks), and a referral revoked while it waited for a
    consent was never shared, so its events must not reach the partner routing had chosen (issue 12)."""
    sent = referral.sent_at is not None
    return {
        "referral_id": referral.id,
        "case_id": referral.case_id,
        "person_id": referral.person_id,
        "service_type": referral.service_type,
        "partner_id": referral.partner_id if sent else None,
        "partner_category": referral.partner_category if sent else None,
        "at": at,
    }


async def try_send(
    w: Workflow,
    referral: Referral,
    *,
    languages: tuple[str, ...] | None = None,
    consents: list[domain.ConsentRecord] | None = None,
) -> bool:
    """Send a proposed referral when a partner has room and a consent covers it; else say why not. ``consents``: the
    person's, when the caller read them already."""
    if referral.status != domain.ReferralStatus.PROPOSED.value:
        return False
    if languages is None:
        person = await w.session.get(KnownPerson, referral.person_id)
        languages = tuple(((person.profile if person else None) or {}).get("languages", ()))
    offers = offers_of(await _offer_rows(w))
    if referral.partner_id is None:
        choice = domain.choose_partner(offers, ServiceType(referral.service_type), languages)
        if choice.offer is None:
            return await block(w, referral, choice.blocked or domain.Blocked(domain.Waiting.NO_PARTNER))
        offer = choice.offer
    else:
        found = [o for o in offers if o.partner_id == referral.partner_id and o.service_type == referral.service_type]
        if not found:
            return await block(w, referral, domain.Blocked(domain.Waiting.PARTNER_NOT_OFFERING, (referral.partner_id,)))
        offer = found[0]
        if offer.free_places is not None and offer.free_places <= 0:
            return await block(w, referral, domain.Blocked(domain.Waiting.NO_CAPACITY, (offer.partner_id,)))
    referral.partner_id = offer.partner_id
    referral.partner_category = offer.partner_category.value
    referral.response_days = offer.response_days
    consent = None
    if referral.shares_personal_data:
        consent = domain.consent_covers(
            consents if consents is not None else await consents_of(w.session, referral.person_id),
            partner_id=offer.partner_id,
            partner_category=offer.partner_category,
            purpose=ConsentPurpose(referral.purpose),
            at=w.now,
        )
        if consent is None:
            return await block(w, referral, CONSENT_MISSING)
    state = domain.apply(domain.ReferralState(domain.ReferralStatus(referral.status)), domain.ReferralAction.SEND)
    referral.status = state.status.value
    referral.blocked_reason = None
    referral.consent_id = consent.consent_id if consent else None
    referral.sent_at = w.now
    referral.response_due_at = domain.add_working_days(w.now, offer.response_days, w.holidays)
    referral.updated_at = w.now
    row = await w.session.get(PartnerOfferRow, (offer.partner_id, referral.service_type))
    if row is not None and row.free_places is not None:
        row.free_places -= 1  # until the partner's next capacity event says otherwise
    await w.publish(
        events.ReferralSent(
            **referral_ids(referral, w.now),
            purpose=ConsentPurpose(referral.purpose),
            response_due_at=referral.response_due_at,
        )
    )
    return True


async def block(w: Workflow, referral: Referral, blocked: domain.Blocked) -> bool:
    """Keep why the referral waits (as its code, ``Blocked.stored``); False: it was not sent."""
    reason = blocked.stored()
    if referral.blocked_reason != reason:
        referral.blocked_reason = reason
        referral.updated_at = w.now
    return False


def blocked_of(referral: Referral) -> domain.Blocked | None:
    """Why a proposed referral waits, if it does."""
    return domain.Blocked.read(referral.blocked_reason) if referral.blocked_reason else None


async def retry_blocked(w: Workflow, person_id: str | None = None, service_type: str | None = None) -> int:
    """Try again what waited for a consent or for capacity."""
    query = select(Referral).where(
        Referral.status == domain.ReferralStatus.PROPOSED.value, Referral.blocked_reason.is_not(None)
    )
    if person_id is not None:
        query = query.where(Referral.person_id == person_id)
    if service_type is not None:
        query = query.where(Referral.service_type == service_type)
    sent = 0
    consents = None  # one person's: read once for all their waiting referrals
    for referral in (await w.session.scalars(query.order_by(Referral.created_at))).all():
        if person_id is not None and referral.shares_personal_data and consents is None:
            consents = await consents_of(w.session, person_id)
        sent += await try_send(w, referral, consents=consents)
    return sent


# --- the lifecycle ----------------------------------------------------------------------------

_EVENT_FOR_ACTION: dict[domain.ReferralAction, type[IntegrationEvent]] = {
    domain.ReferralAction.ACCEPT: events.ReferralAccepted,
    domain.ReferralAction.DECLINE: events.ReferralDeclined,
    domain.ReferralAction.START: events.ReferralStarted,
    domain.ReferralAction.COMPLETE: events.ReferralCompleted,
    domain.ReferralAction.REVOKE: events.ReferralRevoked,
    domain.ReferralAction.EXPIRE: events.ReferralExpired,
    domain.ReferralAction.REFER_ELSEWHERE: events.ReferralReferredElsewhere,
}


def state_of(referral: Referral) -> domain.ReferralState:
    return domain.ReferralState(
        status=domain.ReferralStatus(referral.status),
        decline_reason=domain.DeclineReason(referral.decline_reason) if referral.decline_reason else None,
        outcome=domain.Outcome(referral.outcome) if referral.outcome else None,
        unsuccessful_reason=(
            domain.UnsuccessfulReason(referral.unsuccessful_reason) if referral.unsuccessful_reason else None
        ),
    )


async def refer_elsewhere(w: Workflow, referral: Referral, target: str, reason: domain.ElsewhereReason) -> Referral:
    """End the referral as referred elsewhere and propose the same service at ``target``, sent at once when a
    consent covers it (raises domain errors: no such offer, or the referral is not accepted or in progress)."""
    offer = domain.elsewhere_target(await partner_offers(w.session), referral.service_type, referral.partner_id, target)
    where = {"target_partner_id": offer.partner_id, "reason": domain.ElsewhereReason(reason).value}
    await act(w, referral, domain.ReferralAction.REFER_ELSEWHERE, elsewhere=where)
    again = Referral(
        id=str(uuid.uuid4()),
        case_id=referral.case_id,
        person_id=referral.person_id,
        service_type=referral.service_type,
        partner_id=offer.partner_id,
        rule_id=referral.rule_id,
        rule_set_version=referral.rule_set_version,
        matched_facts=referral.matched_facts,
        purpose=referral.purpose,
        shares_personal_data=referral.shares_personal_data,
        status=domain.ReferralStatus.PROPOSED.value,
        created_at=w.now,
        updated_at=w.now,
    )
    w.session.add(again)
    await w.session.flush()
    await w.publish(
        events.ReferralProposed(
            **referral_ids(again, w.now),
            rule_id=again.rule_id,
            matched_facts=again.matched_facts,
            purpose=ConsentPurpose(again.purpose),
        )
    )
    await try_send(w, again)
    return again


async def act(
    w: Workflow,
    referral: Referral,
    action: domain.ReferralAction,
    *,
    decline_reason: domain.DeclineReason | None = None,
    outcome: domain.Outcome | None = None,
    unsuccessful_reason: domain.UnsuccessfulReason | None = None,
    elsewhere: dict[str, str] | None = None,
) -> None:
    """Apply a lifecycle action (raises domain errors for invalid ones) and publish its event."""
    if action is domain.ReferralAction.SEND:
        if not await try_send(w, referral):
            blocked = blocked_of(referral)
            if blocked is None:
                raise domain.ReferralError(f"the referral cannot be sent: it is {referral.status}")
            raise domain.CannotSend(blocked, referral.service_type)
        return
    state, facts = domain.transition(
        state_of(referral),
        action,
        decline_reason=decline_reason,
        outcome=outcome,
        unsuccessful_reason=unsuccessful_reason,
    )
    referral.status = state.status.value
    referral.decline_reason = state.decline_reason.value if state.decline_reason else None
    referral.outcome = state.outcome.value if state.outcome else None
    referral.unsuccessful_reason = state.unsuccessful_reason.value if state.unsuccessful_reason else None
    referral.updated_at = w.now
    for fact in facts:
        await w.publish(referral_event(referral, fact, w.now, elsewhere=elsewhere))


def referral_event(
    referral: Referral, fact: domain.ReferralMoved, at: datetime, *, elsewhere: dict[str, str] | None = None
) -> IntegrationEvent:
    """The contracts event that reports a lifecycle fact (what a decline, completion or onward referral adds)."""
    extra: dict[str, Any] = {}
    if fact.action is domain.ReferralAction.DECLINE:
        extra["reason"] = fact.decline_reason.value if fact.decline_reason else None
    if fact.action is domain.ReferralAction.COMPLETE:
        extra.update(
            outcome=fact.outcome.value if fact.outcome else None,
            reason=fact.unsuccessful_reason.value if fact.unsuccessful_reason else None,
        )
    if fact.action is domain.ReferralAction.REFER_ELSEWHERE and elsewhere:
        extra.update(elsewhere)
    return _EVENT_FOR_ACTION[fact.action](**referral_ids(referral, at), **extra)


async def run_clocks(w: Workflow) -> dict[str, int]:
    """Escalate referrals not answered in the partner's response time; expire them later."""
    counts = {"escalated": 0, "expired": 0}
    sent = (await w.session.scalars(select(Referral).where(Referral.status == domain.ReferralStatus.SENT.value))).all()
    for referral in sent:
        action = domain.clock_action(
            status=domain.ReferralStatus(referral.status),
            sent_at=aware(referral.sent_at),
            escalated=referral.escalated,
            response_days=referral.response_days,
            expiry_days=w.expiry_days,
            now=w.now,
            holidays=w.holidays,
        )
        if action is domain.ClockAction.ESCALATE:
            referral.escalated = True
            referral.updated_at = w.now
            await w.publish(
                events.ReferralEscalated(
                    **referral_ids(referral, w.now),
                    response_due_at=aware(referral.response_due_at) or w.now,
                )
            )
            counts["escalated"] += 1
        elif action is domain.ClockAction.EXPIRE:
            await act(w, referral, domain.ReferralAction.EXPIRE)
            counts["expired"] += 1
    return counts


# --- the integration plan ----------------------------------------------------------------------


async def set_goal(
    w: Workflow,
    case: Case,
    *,
    person_id: str | None,
    dimension: EsserDimension,
    title: str,
    due_on: date | None,
) -> Goal:
    """A goal of the case's plan, the household's or one member's (raises ``domain.GoalError``)."""
    domain.goal_for(person_id, [m.person_id for m in await members_of(w.session, case.id)])
    goal = Goal(
        id=str(uuid.uuid4()),
        case_id=case.id,
        person_id=person_id,
        dimension=EsserDimension(dimension).value,
        title=title,
        status=domain.GoalStatus.OPEN.value,
        due_on=due_on,
        created_at=w.now,
        updated_at=w.now,
    )
    w.session.add(goal)
    await w.publish(goal_event(events.GoalSet, case, goal))
    return goal


async def update_goal(w: Workflow, case: Case, goal: Goal, changes: dict[str, Any]) -> Goal:
    """Change a goal's title, dimension, status or due date (raises ``domain.GoalError``)."""
    for key, value in domain.goal_changes(changes).items():
        setattr(goal, key, value)  # a date stays a date
    goal.updated_at = w.now
    await w.publish(goal_event(events.GoalUpdated, case, goal))
    return goal


def goal_event(kind: type[events.GoalSet] | type[events.GoalUpdated], case: Case, goal: Goal) -> IntegrationEvent:
    return kind(
        case_id=case.id,
        person_id=case.person_id,
        goal_id=goal.id,
        dimension=EsserDimension(goal.dimension),
        status=goal.status,
        due_on=goal.due_on,
    )
