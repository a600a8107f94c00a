"""Referral routes to the partners the directory's events describe: a new partner's offered
service takes referrals, a withdrawn service takes none (events on the real broker)."""

from __future__ import annotations

import uuid
from typing import Any

from contracts import partners as partner_events
from services.referral.app import create_app
from services.referral.models import PartnerOfferRow
from tests.conftest import eventually, needs_assessed, person_registered, produce_events, referral_settings, running_app


async def test_a_new_partners_service_takes_referrals_and_a_withdrawn_one_none(broker: Any, tmp_path: Any) -> None:
    app = create_app(
        referral_settings(f"sqlite+aiosqlite:///{tmp_path / 'referral.db'}", broker.bootstrap_servers, demo_data=True)
    )
    newcomer = str(uuid.uuid4())
    directory = [
        (
            str(uuid.uuid4()),
            partner_events.PartnerRegistered(
                partner_id="caritas-kaufering",
                name="Caritas Kaufering",
                category="charity",
                languages=["de", "ar"],
                service_types=["migration_counselling"],
            ),
        ),
        (
            str(uuid.uuid4()),
            partner_events.ServiceOffered(
                partner_id="caritas-kaufering",
                service_type="migration_counselling",
                name="Migrationsberatung",
                languages=["de", "ar"],
                response_days=3,
                free_places=5,
            ),
        ),
        (
            str(uuid.uuid4()),
            partner_events.ServiceWithdrawn(partner_id="caritas-landsberg", service_type="migration_counselling"),
        ),
    ]
    person = [
        (str(uuid.uuid4()), person_registered(newcomer, gender="male", registered_on="2026-11-02")),
        (
            str(uuid.uuid4()),
            needs_assessed(
                newcomer,
                gender="male",
                german_level="B2",
                need_categories=["counselling"],
                employment_situation="employed",
            ),
        ),
    ]
    async with running_app(app) as client:
        await produce_events(broker.bootstrap_servers, directory)

        async def directory_applied() -> bool:
            # Partners' and persons' events travel on different partitions: no order between them.
            async with app.state.runtime.session_factory() as session:
                old = await session.get(PartnerOfferRow, ("caritas-landsberg", "migration_counselling"))
                new = await session.get(PartnerOfferRow, ("caritas-kaufering", "migration_counselling"))
                return old is None and new is not None and new.partner_category == "charity"

        await eventually(directory_applied)
        await produce_events(broker.bootstrap_servers, person)

        async def referral() -> dict[str, Any] | None:
            cases = (await client.get("/api/v1/cases", params={"person_id": newcomer})).json()["items"]
            if not cases:
                return None
            found = (await client.get(f"/api/v1/cases/{cases[0]['case_id']}")).json()["referrals"]
            return found[0] if found else None

        counselling = await eventually(referral)
    assert counselling["service_type"] == "migration_counselling"
    assert counselling["partner_id"] == "caritas-kaufering", "the withdrawn service takes no referral"
    assert counselling["blocked_reason"] == "consent missing"
