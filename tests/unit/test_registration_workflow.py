"""The registration service's use cases (services/registration/workflow.py) on the in-memory unit of work
(chassis/memory.py): what each decides, what it stores and which events it publishes (types and data, and no
personal data in them); a refusal publishes nothing. No server, no broker, no file: milliseconds a test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from chassis import clock
from chassis.errors import Problem
from chassis.memory import InMemoryUnitOfWork
from contracts import registration as events
from contracts.vocabulary import AgeBand, NeedCategory
from scripts.demo_data import registration_body
from services.registration import blocks, workflow
from services.registration.app import LANDSBERG_DISTRICTS
from services.registration.models import AccessLog, Base, Consent, NeedsAssessment, Person
from services.registration.schemas import (
    ConsentCreate,
    ContactNamesAsked,
    NeedsAssessmentCreate,
    PersonFields,
    PersonUpdate,
    RegistrationCreate,
)
from services.registration.workflow import EVERYONE, PersonScope, Workflow

NOW = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
ADMIN = "user:admin"
#: What no event of this service may carry: names, contact data, the address, the exact birth date.
PERSONAL = {"given_names", "family_name", "birth_date", "phone", "email", "street", "house_number", "postal_code"}
INDEX = blocks.BlockIndex.of([blocks.Block("a-1", "Altstadt", (blocks.StreetRange("Hauptplatz"),))])


def newcomer(**overrides: Any) -> RegistrationCreate:
    """The demo data's first newcomer, living in the block of ``INDEX``, with contact data."""
    body = registration_body(
        address={"street": "Hauptplatz", "house_number": "3", "postal_code": "86899", "district": "Altstadt"},
        phone="+49 8191 000000",
        email="amina@example.org",
    )
    return RegistrationCreate.model_validate(body | overrides)


def member(**overrides: Any) -> dict[str, Any]:
    """A household member of a registration: the newcomer's fields without the address."""
    fields = {k: v for k, v in newcomer().model_dump(mode="json").items() if k in PersonFields.model_fields}
    return fields | overrides


NEEDS = NeedsAssessmentCreate.model_validate(
    {"german_level": "A1", "schooling": "secondary", "employment_situation": "job_seeking", "notes": "private"}
)


@pytest.fixture
async def uow() -> AsyncIterator[InMemoryUnitOfWork]:
    token = clock.current.set(lambda: NOW)  # the body validators' "today"
    unit = await InMemoryUnitOfWork.create(Base.metadata)
    yield unit
    await unit.close()
    clock.current.reset(token)


Run = Callable[..., Awaitable[Any]]


@pytest.fixture
def run(uow: InMemoryUnitOfWork) -> Run:
    """Run a use case in a unit of work of its own, as a request would."""

    async def each(
        use_case: Run,
        *args: Any,
        at: datetime = NOW,
        actor: str = ADMIN,
        view: Callable[[Any], Any] = lambda done: done,
        **kwargs: Any,
    ) -> Any:
        """``view`` reads the result while its unit of work is open, as a route shapes its answer."""
        async with uow:
            w = Workflow(uow=uow, now=at, actor=actor, districts=LANDSBERG_DISTRICTS, block_index=INDEX)
            return view(await use_case(w, *args, **kwargs))

    return each


async def refused(status: int, kind: str, call: Awaitable[Any], uow: InMemoryUnitOfWork) -> Problem:
    before = list(uow.published)
    with pytest.raises(Problem) as caught:
        await call
    assert (caught.value.status, caught.value.kind) == (status, kind), caught.value.detail
    assert uow.published == before  # a refusal publishes nothing
    return caught.value


def no_personal_data(uow: InMemoryUnitOfWork) -> None:
    for event in uow.published:
        assert not PERSONAL & set(event.model_dump()), event.event_type


async def count(uow: InMemoryUnitOfWork, model: Any, **where: Any) -> int:
    async with uow:
        query = select(func.count()).select_from(model).filter_by(**where)
        return int(await uow.session.scalar(query) or 0)


async def registered(run: Run, actor: str = ADMIN, **overrides: Any) -> str:
    done: workflow.Registration = await run(workflow.register, newcomer(**overrides), actor=actor)
    return str(done.persons[0]["id"])


# --- registration --------------------------------------------------------------------------


async def test_a_registration_stores_the_household_and_publishes_a_profile_per_person(
    run: Run, uow: InMemoryUnitOfWork
) -> None:
    child = member(given_names="Yusuf", birth_date="2016-01-05")
    done = await run(workflow.register, newcomer(household_members=[child]))
    assert len(done.persons) == 2 and {p["household_id"] for p in done.persons} == {done.household_id}
    assert uow.types() == [events.PersonRegistered.event_type] * 2
    first, second = uow.published
    assert isinstance(first, events.PersonRegistered) and isinstance(second, events.PersonRegistered)
    assert first.person_id == done.persons[0]["id"] and second.person_id == done.persons[1]["id"]
    assert (first.age_band, second.age_band) == (AgeBand.AGE_27_44, AgeBand.AGE_10_17)
    assert (first.district, first.block_id) == ("Altstadt", "a-1")  # the address only as district and block
    assert first.recorded_by == ADMIN and first.registered_on == NOW.astimezone().date()
    no_personal_data(uow)
    assert await count(uow, Person) == 2
    assert await count(uow, AccessLog, action="register", actor=ADMIN) == 2


async def test_without_a_forwarded_identity_nobody_is_named_in_the_events(run: Run, uow: InMemoryUnitOfWork) -> None:
    await registered(run, actor="unauthenticated")
    assert uow.published[0].recorded_by is None  # type: ignore[attr-defined]


async def test_the_same_person_again_is_refused_until_confirmed(run: Run, uow: InMemoryUnitOfWork) -> None:
    first = await registered(run)
    problem = await refused(409, "possible-duplicate", run(workflow.register, newcomer(given_names="amina")), uow)
    assert [p["person_id"] for p in problem.extensions["existing_persons"]] == [first]
    await run(workflow.register, newcomer(confirm_new_person=True))
    assert await count(uow, Person) == 2


async def test_a_registration_that_breaks_a_rule_stores_nothing(run: Run, uow: InMemoryUnitOfWork) -> None:
    twice = member()
    await refused(422, "validation", run(workflow.register, newcomer(household_members=[twice])), uow)
    elsewhere = newcomer(
        address={"street": "Main St", "house_number": "1", "postal_code": "10115", "district": "Mitte"}
    )
    problem = await refused(422, "validation", run(workflow.register, elsewhere), uow)
    assert "Mitte" in problem.detail and problem.extensions["districts"] == LANDSBERG_DISTRICTS
    await refused(422, "validation", run(workflow.register, newcomer(household_id="no-such-household")), uow)
    assert await count(uow, Person) == 0 and uow.commits == 0


# --- the record ----------------------------------------------------------------------------


async def test_a_change_needs_the_current_etag_and_publishes_the_new_version(run: Run, uow: InMemoryUnitOfWork) -> None:
    person_id = await registered(run)
    change = PersonUpdate.model_validate({"given_names": "Amina Sara", "phone": None})
    await refused(428, "precondition-required", run(workflow.update_person, EVERYONE, person_id, change, None), uow)
    await refused(412, "stale", run(workflow.update_person, EVERYONE, person_id, change, '"7"'), uow)
    person = await run(workflow.update_person, EVERYONE, person_id, change, 'W/"1"')
    assert (person.version, person.given_names, person.phone) == (2, "Amina Sara", None)
    assert workflow.etag(person) == '"2"'
    updated = uow.published[-1]
    assert isinstance(updated, events.PersonUpdated) and (updated.person_id, updated.version) == (person_id, 2)
    no_personal_data(uow)
    removing = PersonUpdate.model_validate({"family_name": None})
    await refused(422, "validation", run(workflow.update_person, EVERYONE, person_id, removing, '"2"'), uow)


async def test_a_move_away_is_published_once_and_then_the_record_is_frozen(run: Run, uow: InMemoryUnitOfWork) -> None:
    person_id = await registered(run)
    on = date(2026, 10, 30)
    person = await run(workflow.move_away, EVERYONE, person_id, on, "Abmeldung beim Bürgerbüro")
    assert (person.status, person.version, person.moved_away_on) == ("moved_away", 2, on)
    moved = uow.published[-1]
    assert isinstance(moved, events.PersonMovedAway) and moved.moved_away_on == on
    await refused(409, "invalid-transition", run(workflow.move_away, EVERYONE, person_id, on, "again"), uow)
    change = PersonUpdate.model_validate({"given_names": "Other"})
    await refused(409, "invalid-transition", run(workflow.update_person, EVERYONE, person_id, change, '"2"'), uow)
    await refused(409, "invalid-transition", run(workflow.assess_needs, EVERYONE, person_id, NEEDS), uow)
    async with uow:
        reasons = (await uow.session.scalars(select(AccessLog.purpose).filter_by(action="move_away"))).all()
    assert reasons == ["Abmeldung beim Bürgerbüro"]


async def test_an_erasure_leaves_a_tombstone_and_says_only_when(run: Run, uow: InMemoryUnitOfWork) -> None:
    person_id = await registered(run)
    await run(workflow.assess_needs, EVERYONE, person_id, NEEDS)
    await run(
        workflow.give_consent,
        EVERYONE,
        person_id,
        ConsentCreate.model_validate({"partner_id": "p-1", "purpose": "counselling"}),
    )
    await run(workflow.erase, EVERYONE, person_id, "the person's request (Art. 17)")
    erased = uow.published[-1]
    assert isinstance(erased, events.PersonErased) and erased.erased_at == NOW
    assert set(erased.model_dump()) == {"person_id", "erased_at"}
    async with uow:
        person = await uow.session.get(Person, person_id)
        assert person is not None and person.status == "erased" and person.given_names is None
    assert await count(uow, NeedsAssessment) == 0 and await count(uow, Consent) == 0
    await refused(410, "erased", run(workflow.erase, EVERYONE, person_id, "again"), uow)
    status, actions = await run(  # the tombstone and the log stay
        workflow.export,
        EVERYONE,
        person_id,
        view=lambda held: (held.person.status, [e.action for e in held.access_log]),
    )
    assert status == "erased" and actions[:2] == ["export", "erase"]


# --- who reaches whom ----------------------------------------------------------------------


async def test_a_caseworker_reaches_only_the_persons_of_their_teams_open_cases(
    run: Run, uow: InMemoryUnitOfWork
) -> None:
    person_id = await registered(run)
    team = PersonScope(team="north", purpose="casework")
    await refused(404, "not-found", run(workflow.read_person, team, person_id), uow)
    assert await run(workflow.look_up_persons, team, [person_id]) == []
    async with uow:
        await workflow.case_opened(uow, "case-1", person_id, None)
        await workflow.case_assigned(uow, "case-1", person_id, "north", None)
        await uow.commit()
    assert (await run(workflow.read_person, team, person_id)).id == person_id
    rows, total = await run(workflow.list_persons, team, workflow.PersonQuery(name="amina"))
    assert total == 1 and [p.id for p in rows] == [person_id]
    async with uow:
        await workflow.case_closed(uow, "case-1", person_id)
        await uow.commit()
    await refused(404, "not-found", run(workflow.read_person, team, person_id), uow)


async def test_reads_are_logged_with_the_roles_purpose(run: Run, uow: InMemoryUnitOfWork) -> None:
    person_id = await registered(run)
    officer = PersonScope(everyone=True, purpose="data subject request")
    await run(workflow.read_person, officer, person_id, actor="user:dpo")
    async with uow:
        logged = (
            await uow.session.execute(
                select(AccessLog.actor, AccessLog.purpose, AccessLog.person_id).filter_by(action="read")
            )
        ).all()
    assert [tuple(row) for row in logged] == [("user:dpo", "data subject request", person_id)]
    assert uow.types() == [events.PersonRegistered.event_type]  # reading publishes nothing


# --- needs and consents ----------------------------------------------------------------------


async def test_needs_assessments_are_versions_and_publish_categories_not_notes(
    run: Run, uow: InMemoryUnitOfWork
) -> None:
    person_id = await registered(run)
    first = await run(workflow.assess_needs, EVERYONE, person_id, NEEDS)
    second = await run(workflow.assess_needs, EVERYONE, person_id, NEEDS)
    assert (first.version, second.version) == (1, 2)
    assert first.need_categories == [NeedCategory.LANGUAGE.value, NeedCategory.EMPLOYMENT.value]
    assessed = uow.published[-1]
    assert isinstance(assessed, events.NeedsAssessed)
    assert (assessed.assessment_version, assessed.age_band) == (2, AgeBand.AGE_27_44)
    assert "notes" not in assessed.model_dump()
    no_personal_data(uow)
    assert [r.version for r in await run(workflow.list_needs, EVERYONE, person_id)] == [2, 1]


async def test_a_consent_is_given_and_withdrawn_once(run: Run, uow: InMemoryUnitOfWork) -> None:
    person_id = await registered(run)
    body = ConsentCreate.model_validate({"partner_category": "charity", "purpose": "counselling"})
    consent = await run(workflow.give_consent, EVERYONE, person_id, body)
    given = uow.published[-1]
    assert isinstance(given, events.ConsentGiven) and (given.consent_id, given.given_at) == (consent.id, NOW)
    future = ConsentCreate.model_validate(
        {"partner_id": "p-1", "purpose": "counselling", "given_at": (NOW + timedelta(hours=1)).isoformat()}
    )
    await refused(422, "validation", run(workflow.give_consent, EVERYONE, person_id, future), uow)
    later = NOW + timedelta(days=1)
    withdrawn = await run(workflow.withdraw_consent, EVERYONE, person_id, consent.id, at=later)
    assert workflow.terms_of(withdrawn).withdrawn_at == later
    event = uow.published[-1]
    assert isinstance(event, events.ConsentWithdrawn) and event.withdrawn_at == later
    await refused(409, "invalid-transition", run(workflow.withdraw_consent, EVERYONE, person_id, consent.id), uow)
    await refused(404, "not-found", run(workflow.withdraw_consent, EVERYONE, person_id, "no-such-consent"), uow)


# --- other services' questions -----------------------------------------------------------------


async def test_a_partner_gets_contact_data_only_under_a_consent_in_force(run: Run, uow: InMemoryUnitOfWork) -> None:
    person_id = await registered(run)
    body = ConsentCreate.model_validate({"partner_id": "p-1", "purpose": "counselling"})
    consent = await run(workflow.give_consent, EVERYONE, person_id, body)
    ask = {"referral_id": "r-1", "consent_id": consent.id, "partner_category": None, "via": "service:referral"}
    person = await run(workflow.contact_for_partner, person_id, partner_id="p-1", **ask)
    assert person.email == "amina@example.org"
    await refused(403, "consent-missing", run(workflow.contact_for_partner, person_id, partner_id="p-2", **ask), uow)
    names = await run(
        workflow.contact_names,
        ContactNamesAsked.model_validate(
            {
                "partner_id": "p-1",
                "referrals": [
                    {"person_id": person_id, "referral_id": "r-1", "consent_id": consent.id},
                    {"person_id": "someone-else", "referral_id": "r-2", "consent_id": consent.id},
                ],
            }
        ),
        via="service:referral",
    )
    assert [(referral, p.id) for referral, p in names] == [("r-1", person_id)]
    await run(workflow.withdraw_consent, EVERYONE, person_id, consent.id)
    await refused(403, "consent-missing", run(workflow.contact_for_partner, person_id, partner_id="p-1", **ask), uow)
    async with uow:
        actors = (await uow.session.scalars(select(AccessLog.actor).filter_by(action="read_contact"))).all()
    assert actors == ["partner:p-1 via service:referral for referral r-1"]


async def test_courses_reads_names_on_behalf_of_its_staff(run: Run, uow: InMemoryUnitOfWork) -> None:
    person_id = await registered(run)
    holder = await run(workflow.pass_holder, person_id, on_behalf_of="user:kurs", via="service:courses")
    assert holder.given_names == "Amina"
    rows = await run(
        workflow.participant_names,
        [person_id, person_id, "unknown"],
        on_behalf_of="user:kurs",
        course_id="c-1",
        via="service:courses",
    )
    assert [r.id for r in rows] == [person_id]
    async with uow:
        logged = (
            await uow.session.execute(
                select(AccessLog.action, AccessLog.actor, AccessLog.purpose).where(AccessLog.action.like("read_p%"))
            )
        ).all()
    assert sorted(map(tuple, logged)) == [
        ("read_participant_name", "user:kurs via service:courses for a participant list", "course c-1"),
        ("read_pass_holder", "user:kurs via service:courses for an education pass", None),
    ]
    assert uow.types() == [events.PersonRegistered.event_type]
