"""The staff UI's choices come from ``contracts``, and the services use the very same enums from ``contracts``:
a form cannot offer a choice the service refuses."""

from __future__ import annotations

from enum import StrEnum

import pytest

from contracts import vocabulary
from gateway.ui import casework, course_admin, learning, portal, public, staff
from services.courses import domain as courses
from services.partners import domain as partners
from services.referral import domain as referral


@pytest.mark.parametrize(
    ("contract", "service"),
    [
        (vocabulary.CourseCategory, courses.CourseCategory),
        (vocabulary.Funding, courses.Funding),
        (vocabulary.CompletionResult, courses.CompletionResult),
        (vocabulary.DeclineReason, referral.DeclineReason),
        (vocabulary.UnsuccessfulReason, referral.UnsuccessfulReason),
        (vocabulary.ElsewhereReason, referral.ElsewhereReason),
        (vocabulary.CaseCloseReason, referral.CaseCloseReason),
        (vocabulary.GoalStatus, referral.GoalStatus),
        (vocabulary.MeetingKind, partners.MeetingKind),
        (vocabulary.MeetingAudience, partners.MeetingAudience),
    ],
)
def test_the_services_use_the_contracts_values(contract: type[StrEnum], service: type[StrEnum]) -> None:
    # One enum, defined once in contracts: a service can no longer add or drop a value the UI does not know.
    assert service is contract


def test_the_ui_offers_the_contracts_values() -> None:
    assert tuple(vocabulary.CourseCategory) == course_admin.CATEGORIES
    assert set(course_admin.FUNDING) == set(vocabulary.Funding)
    assert course_admin.LEVELS == ("A1", "A2", "B1", "B2", "C1", "C2")
    assert tuple(vocabulary.CompletionResult) == learning.RESULTS
    assert (
        casework.CLOSE_REASONS == tuple(r.value for r in referral.STAFF_CLOSE_REASONS) == vocabulary.STAFF_CLOSE_REASONS
    )
    assert tuple(vocabulary.ElsewhereReason) == casework.ELSEWHERE_REASONS
    assert tuple(vocabulary.DeclineReason) == portal.DECLINE_REASONS
    assert set(portal.UNSUCCESSFUL_REASONS) == set(vocabulary.UnsuccessfulReason) - {"could_not_contact_partner"}
    assert tuple(vocabulary.Gender) == staff.GENDERS
    assert set(staff.RESIDENCE_GROUPS) == set(vocabulary.ResidenceStatusGroup)
    assert tuple(vocabulary.ConsentPurpose) == staff.PURPOSES
    assert tuple(vocabulary.GoalStatus) == staff.GOAL_STATUSES
    assert tuple(vocabulary.MeetingKind) == public.MEETING_KINDS
    assert tuple(vocabulary.MeetingAudience) == public.MEETING_AUDIENCES
