"""From registration to referrals through the real broker: a case, a caseworker, routed referrals
sent where a consent covers them, and 'consent missing' where none does."""

from __future__ import annotations

from typing import Any

from tests.conftest import case_with_referrals, eventually, register_with_needs


async def test_a_newcomer_gets_a_case_a_caseworker_and_referrals_gated_by_consent(platform: Any) -> None:
    registration, referral = platform
    person = await register_with_needs(
        registration,
        [
            {"partner_category": "adult_education", "purpose": "course_enrolment"},
            {"partner_id": "jobcenter-landsberg", "purpose": "job_placement"},
        ],  # no consent for the IHK
    )
    case = await eventually(lambda: case_with_referrals(referral, person, 4))
    assert case["status"] == "open"
    assert case["caseworker_id"] == "lotse-a.berger", "the roster's Arabic speaker with the lightest load"
    by_service = {r["service_type"]: r for r in case["referrals"]}
    assert set(by_service) == {
        "integration_course",
        "course_with_childcare",
        "job_placement",
        "qualification_recognition",
    }

    course = by_service["integration_course"]
    assert (course["status"], course["partner_id"], course["rule_id"]) == ("sent", "vhs-landsberg", "german-below-b1")
    assert course["matched_facts"]["german_level"] == "A1"
    assert by_service["course_with_childcare"]["status"] == "sent"
    job = by_service["job_placement"]
    assert (job["status"], job["partner_id"], job["rule_id"]) == ("sent", "jobcenter-landsberg", "job-seeking")
    assert job["response_due_at"] is not None

    ihk = by_service["qualification_recognition"]
    assert ihk["status"] == "proposed"
    assert ihk["blocked_reason"] == "consent missing"
    assert ihk["rule_id"] == "qualification-recognition"
    assert ihk["matched_facts"] == {"need_categories": ["recognition"]}

    # The consent arrives later: the waiting referral goes out by itself.
    consent = {"partner_category": "chamber", "purpose": "qualification_recognition"}
    assert (await registration.post(f"/api/v1/persons/{person}/consents", json=consent)).status_code == 201

    async def ihk_sent() -> bool:
        return bool((await referral.get(f"/api/v1/referrals/{ihk['referral_id']}")).json()["status"] == "sent")

    await eventually(ihk_sent)

    timeline = (await referral.get(f"/api/v1/cases/{case['case_id']}/timeline")).json()
    types = [t["event_type"].split(".")[-2] for t in timeline]
    assert types[0] == "person_registered" and "case_opened" in types and "referral_sent" in types
    assert all("given_names" not in t["summary"] for t in timeline)
