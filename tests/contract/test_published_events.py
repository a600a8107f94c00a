"""Every event the registration service publishes is a valid CloudEvent, matches its committed
schema, and carries no personal data. Read with the `cloudevents` SDK, a client we did not write."""

from __future__ import annotations

import json
from typing import Any

import httpx
import jsonschema
from cloudevents.core.bindings import kafka as ck

from contracts import schemagen
from contracts.registration import PERSONS_TOPIC
from tests.conftest import consume, newcomer


def read_cloudevent(record: Any) -> Any:
    return ck.from_binary_event(ck.KafkaMessage(headers=dict(record.headers), key=record.key, value=record.value))


async def test_lifecycle_events_are_valid_cloudevents_without_personal_data(
    registration: httpx.AsyncClient, broker: Any
) -> None:
    body = newcomer(given_names="Zainab Mariam", family_name="Al-Khatib", birth_date="1987-06-05")
    reply = await registration.post("/api/v1/registrations", json=body)
    assert reply.status_code == 201, reply.text
    person = reply.json()["person_id"]
    base = f"/api/v1/persons/{person}"
    needs = {
        "german_level": "A2",
        "schooling": "secondary",
        "employment_situation": "job_seeking",
        "notes": "Worked as a nurse in Aleppo",
    }
    assert (await registration.post(f"{base}/needs-assessments", json=needs)).status_code == 201
    consent = await registration.post(
        f"{base}/consents", json={"partner_category": "charity", "purpose": "counselling"}
    )
    assert consent.status_code == 201
    withdrawal = await registration.post(f"{base}/consents/{consent.json()['consent_id']}/withdrawal")
    assert withdrawal.status_code == 200
    etag = (await registration.get(base)).headers["etag"]
    patch = await registration.patch(base, json={"residence_status_group": "other"}, headers={"If-Match": etag})
    assert patch.status_code == 200, patch.text
    assert (
        await registration.post(f"{base}/move-away", json={"moved_away_on": "2026-11-01", "reason": "Abmeldung"})
    ).status_code == 200
    assert (await registration.delete(base, params={"reason": "Art. 17"})).status_code == 204

    def mine(records: list[Any]) -> list[Any]:
        return [r for r in records if r.key == person.encode()]

    records = mine(await consume(broker.bootstrap_servers, PERSONS_TOPIC, until=lambda rs: len(mine(rs)) >= 7))
    events = [read_cloudevent(r) for r in records]
    assert [e.get_type() for e in events] == [
        f"de.landsberg.integration.registration.{name}.v1"
        for name in (
            "person_registered",
            "needs_assessed",
            "consent_given",
            "consent_withdrawn",
            "person_updated",
            "person_moved_away",
            "person_erased",
        )
    ]  # (in the order they happened: one key, one partition)
    assert len({e.get_id() for e in events}) == 7
    forbidden = ["Zainab", "Mariam", "Al-Khatib", "1987-06-05", "Schwaighofstraße", "8191", "example.org", "nurse"]
    for record, event in zip(records, events, strict=True):
        assert event.get_source() == "/services/registration"
        assert event.get_subject() == person
        assert event.get_data()["person_id"] == person
        schema = json.loads(schemagen.schema_file(event.get_type()).read_text())
        jsonschema.validate(event.get_data(), schema)
        raw = record.value.decode()
        assert not [word for word in forbidden if word in raw], raw


async def test_referral_events_are_valid_cloudevents_matching_their_schemas(platform: Any, broker: Any) -> None:
    from contracts.referral import CASES_TOPIC, REFERRALS_TOPIC
    from tests.conftest import case_with_referrals, eventually, register_with_needs

    registration, referral = platform
    person = await register_with_needs(
        registration, [{"partner_category": "adult_education", "purpose": "course_enrolment"}]
    )
    case = await eventually(lambda: case_with_referrals(referral, person, 4))
    sent = next(r for r in case["referrals"] if r["status"] == "sent")
    accepted = await referral.post(
        f"/api/v1/partner/referrals/{sent['referral_id']}/accept", headers={"X-Partner-Id": sent["partner_id"]}
    )
    assert accepted.status_code == 200, accepted.text

    def about_person(records: list[Any]) -> list[Any]:
        return [r for r in records if json.loads(r.value).get("person_id") == person]

    case_records = about_person(
        await consume(broker.bootstrap_servers, CASES_TOPIC, until=lambda rs: len(about_person(rs)) >= 2)
    )
    referral_records = about_person(
        await consume(broker.bootstrap_servers, REFERRALS_TOPIC, until=lambda rs: len(about_person(rs)) >= 7)
    )
    kinds = [read_cloudevent(r).get_type().split(".")[-2] for r in case_records + referral_records]
    assert kinds[:2] == ["case_opened", "case_assigned"]
    assert {"referral_proposed", "referral_sent", "referral_accepted"} <= set(kinds)
    for record in case_records + referral_records:
        event = read_cloudevent(record)
        assert event.get_source() == "/services/referral"
        jsonschema.validate(event.get_data(), json.loads(schemagen.schema_file(event.get_type()).read_text()))
        assert event.get_subject() == record.key.decode()
        assert "Haddad" not in record.value.decode()
