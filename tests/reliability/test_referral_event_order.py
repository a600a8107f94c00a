"""Duplicate and out-of-order registration events end in the same referral state as the ordered
stream (events produced straight onto the real broker, consumed by the real referral service)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import httpx

from contracts import registration as reg
from contracts.base import IntegrationEvent
from services.referral.app import create_app
from services.referral.models import KnownPerson
from tests.conftest import eventually, needs_assessed, person_registered, produce_events, referral_settings, running_app


def stream(person: str) -> list[tuple[str, IntegrationEvent]]:
    """The ordered history of one newcomer: (ce_id, event)."""
    registered = person_registered(person, residence_status_group="other", registered_on="2026-11-02")
    needs = needs_assessed(
        person,
        need_categories=["language", "employment"],
        childcare_needed=True,
        children_age_bands=["3-5"],
        residence_status_group="other",
    )
    now = datetime.now(UTC)
    return [
        (str(uuid.uuid4()), registered),
        (str(uuid.uuid4()), needs),
        (
            str(uuid.uuid4()),
            reg.ConsentGiven(
                person_id=person,
                consent_id=str(uuid.uuid4()),
                partner_category="adult_education",
                purpose="course_enrolment",
                given_at=now,
            ),
        ),
        (
            str(uuid.uuid4()),
            reg.PersonUpdated(**(registered.model_dump() | {"residence_status_group": "asylum_seeker"}), version=2),
        ),
    ]


async def outcome(client: httpx.AsyncClient, person: str) -> dict[str, Any] | None:
    cases = (await client.get("/api/v1/cases", params={"person_id": person})).json()["items"]
    if not cases:
        return None
    case = (await client.get(f"/api/v1/cases/{cases[0]['case_id']}")).json()
    referrals = sorted(
        (r["service_type"], r["status"], r["partner_id"], r["blocked_reason"], r["rule_id"]) for r in case["referrals"]
    )
    return {"status": case["status"], "assigned": case["caseworker_id"] is not None, "referrals": referrals}


async def test_out_of_order_and_duplicate_events_end_like_the_ordered_stream(broker: Any, tmp_path: Any) -> None:
    app = create_app(
        referral_settings(f"sqlite+aiosqlite:///{tmp_path / 'referral.db'}", broker.bootstrap_servers, demo_data=True)
    )
    ordered_person, shuffled_person = str(uuid.uuid4()), str(uuid.uuid4())
    registered, needs, consent, updated = stream(shuffled_person)
    async with running_app(app) as client:
        await produce_events(broker.bootstrap_servers, stream(ordered_person))
        # The update overtakes the registration; the registration and the needs arrive twice.
        await produce_events(broker.bootstrap_servers, [updated, needs, registered, registered, consent, needs])

        async def settled(person: str) -> dict[str, Any] | None:
            result = await outcome(client, person)
            # Asylum counselling (from the update) and three from the needs; the two courses sent.
            return result if result and len(result["referrals"]) == 4 and _sent_courses(result) else None

        ordered = await eventually(lambda: settled(ordered_person))
        shuffled = await eventually(lambda: settled(shuffled_person))
        async with app.state.runtime.session_factory() as session:
            known = {p: await session.get(KnownPerson, p) for p in (ordered_person, shuffled_person)}
    for person in known.values():
        # The late registration (version 1) did not overwrite the newer update (version 2).
        assert person is not None and person.profile_version == 2
        assert person.profile["residence_status_group"] == "asylum_seeker"
        assert person.needs_version == 1

    assert shuffled == ordered
    assert ordered["status"] == "open" and ordered["assigned"]
    services = {r[0]: r for r in ordered["referrals"]}
    assert services["asylum_social_counselling"][1:4] == ("proposed", "caritas-landsberg", "consent missing")
    assert services["integration_course"][1:3] == ("sent", "vhs-landsberg")


def _sent_courses(result: dict[str, Any]) -> bool:
    return sum(1 for r in result["referrals"] if r[1] == "sent") == 2
