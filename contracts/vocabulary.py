"""Shared vocabulary of the platform: the values events and APIs agree on."""

from __future__ import annotations

from enum import StrEnum


class Gender(StrEnum):
    FEMALE = "female"
    MALE = "male"
    DIVERSE = "diverse"  # "divers" in German civil status law
    UNSPECIFIED = "unspecified"  # "ohne Angabe"


class AgeBand(StrEnum):
    """Age bands fine enough for planning (Kita, school) and routing (under 27), coarse enough to not identify."""

    AGE_0_2 = "0-2"
    AGE_3_5 = "3-5"
    AGE_6_9 = "6-9"
    AGE_10_17 = "10-17"
    AGE_18_26 = "18-26"
    AGE_27_44 = "27-44"
    AGE_45_64 = "45-64"
    AGE_65_PLUS = "65+"


#: Each band's first and last year of age (65+ up to the oldest plausible age).
AGE_BAND_YEARS: dict[AgeBand, tuple[int, int]] = {
    AgeBand.AGE_0_2: (0, 2),
    AgeBand.AGE_3_5: (3, 5),
    AgeBand.AGE_6_9: (6, 9),
    AgeBand.AGE_10_17: (10, 17),
    AgeBand.AGE_18_26: (18, 26),
    AgeBand.AGE_27_44: (27, 44),
    AgeBand.AGE_45_64: (45, 64),
    AgeBand.AGE_65_PLUS: (65, 130),
}


class ResidenceStatusGroup(StrEnum):
    EU_CITIZEN = "eu_citizen"
    RECOGNISED_REFUGEE = "recognised_refugee"  # incl. subsidiary protection
    ASYLUM_SEEKER = "asylum_seeker"
    TOLERATED = "tolerated"  # Duldung
    SKILLED_WORKER_OR_STUDY_VISA = "skilled_worker_or_study_visa"
    FAMILY_REUNIFICATION = "family_reunification"
    OTHER = "other"


class GermanLevel(StrEnum):
    NONE = "none"
    A1 = "A1"
    A2 = "A2"
    B1 = "B1"
    B2 = "B2"
    C1 = "C1"
    C2 = "C2"


class NeedCategory(StrEnum):
    """The levers of the seed: language, education, labour market, participation, plus support needs."""

    LANGUAGE = "language"
    EDUCATION = "education"
    EMPLOYMENT = "employment"
    RECOGNITION = "recognition"  # of a foreign qualification
    COUNSELLING = "counselling"
    HOUSING = "housing"
    CHILDCARE = "childcare"
    HEALTH = "health"
    PARTICIPATION = "participation"


class EmploymentSituation(StrEnum):
    EMPLOYED = "employed"
    SELF_EMPLOYED = "self_employed"
    JOB_SEEKING = "job_seeking"
    IN_TRAINING = "in_training"
    IN_SCHOOL = "in_school"
    NOT_PERMITTED = "not_permitted"  # no work permit yet
    NOT_SEEKING = "not_seeking"


class Schooling(StrEnum):
    NONE = "none"
    PRIMARY = "primary"
    SECONDARY = "secondary"
    UPPER_SECONDARY = "upper_secondary"
    VOCATIONAL = "vocational"
    UNIVERSITY = "university"


class PartnerCategory(StrEnum):
    CHARITY = "charity"
    JOB_CENTRE = "job_centre"
    CHAMBER = "chamber"
    ADULT_EDUCATION = "adult_education"
    DISTRICT_OFFICE = "district_office"
    CITY_DEPARTMENT = "city_department"
    YOUTH_SERVICE = "youth_service"
    VOLUNTEER_GROUP = "volunteer_group"


class ConsentPurpose(StrEnum):
    """Why personal data may be shared with a partner (GDPR Art. 6(1)(a), 9(2)(a))."""

    REFERRAL = "referral"  # share contact data so the partner can reach the person
    COUNSELLING = "counselling"
    COURSE_ENROLMENT = "course_enrolment"
    JOB_PLACEMENT = "job_placement"
    QUALIFICATION_RECOGNITION = "qualification_recognition"


class ServiceType(StrEnum):
    """What a partner offers and a referral asks for."""

    ASYLUM_SOCIAL_COUNSELLING = "asylum_social_counselling"  # Asylsozialberatung
    MIGRATION_COUNSELLING = "migration_counselling"  # Migrationsberatung für erwachsene Zuwanderer (MBE)
    YOUTH_MIGRATION_SERVICE = "youth_migration_service"  # Jugendmigrationsdienst (JMD), under 27
    INTEGRATION_COURSE = "integration_course"  # Integrationskurs (BAMF) or another German course
    COURSE_WITH_CHILDCARE = "course_with_childcare"
    JOB_PLACEMENT = "job_placement"  # Jobcenter
    QUALIFICATION_RECOGNITION = "qualification_recognition"  # IHK FOSA recognition advice
    HOUSING_ADVICE = "housing_advice"
    HEALTH_ADVICE = "health_advice"  # health counselling, e.g. the public health office (Gesundheitsamt)
    RETURN_COUNSELLING = "return_counselling"  # return and perspective counselling, with qualification
    RECOGNITION_COUNSELLING = "recognition_counselling"  # recognition counselling for every profession (IQ)
    JOB_SPECIFIC_GERMAN = "job_specific_german"  # job-specific German (Berufssprachkurs)
    EU_JOB_MOBILITY = "eu_job_mobility"  # the EU's own job and mobility advice (EURES)
    MEETING_OFFER = "meeting_offer"  # Begegnung: language cafés, open schools, sports, tandems


class EsserDimension(StrEnum):
    """Esser's four dimensions of integration: how plan goals and indicators are grouped."""

    CULTURE_AND_LANGUAGE = "culture_and_language"  # Kulturation
    PLACEMENT = "placement"  # Platzierung: education and work
    INTERACTION = "interaction"  # Interaktion
    IDENTIFICATION = "identification"  # Identifikation


# --- what the staff UI offers to choose: the services' own values (tests/unit/test_ui_vocabulary.py keeps them) ---


class CourseCategory(StrEnum):
    """What a course is (the courses service's ``CourseCategory``)."""

    INTEGRATION_COURSE = "integration_course"  # Integrationskurs (BAMF)
    GERMAN_SECOND_LANGUAGE = "german_second_language"  # Deutsch als Zweitsprache
    JOB_GERMAN = "job_german"  # Berufssprachkurs
    LITERACY = "literacy"  # Alphabetisierung
    ENGLISH = "english"
    HEALTH = "health"
    CULTURAL_EDUCATION = "cultural_education"
    CIVIC_EDUCATION = "civic_education"  # politische Bildung
    PARENTS_AND_WOMEN = "parents_and_women"
    ORIENTATION = "orientation"  # Orientierungskurs


class Funding(StrEnum):
    """Who pays for a course."""

    BAMF = "bamf"
    CITY = "city"
    FEE = "fee"


class CompletionResult(StrEnum):
    """How a participant completed a course."""

    PASSED = "passed"
    NOT_PASSED = "not_passed"
    ATTENDED = "attended"


class DeclineReason(StrEnum):
    """Why a partner declines a referral (``services.referral.domain.DeclineReason``)."""

    NO_CAPACITY = "no_capacity"
    NOT_ELIGIBLE = "not_eligible"
    NOT_OUR_SERVICE = "not_our_service"
    ALREADY_SUPPORTED = "already_supported"
    OTHER = "other"


class UnsuccessfulReason(StrEnum):
    """Why a referral ended without success (``services.referral.domain.UnsuccessfulReason``)."""

    CLIENT_REFUSED = "client_refused"
    NO_CAPACITY = "no_capacity"
    NO_LONGER_NEEDED = "no_longer_needed"
    COULD_NOT_CONTACT_CLIENT = "could_not_contact_client"
    COULD_NOT_CONTACT_PARTNER = "could_not_contact_partner"
    OTHER = "other"


class ElsewhereReason(StrEnum):
    """Why a caseworker sends the person to another partner instead (``services.referral.domain``)."""

    BETTER_FIT = "better_fit"
    NO_CAPACITY = "no_capacity"
    LANGUAGE = "language"
    DISTANCE = "distance"
    OTHER = "other"


class CaseCloseReason(StrEnum):
    """Why a case was closed (``services.referral.domain.CaseCloseReason``)."""

    MOVED_AWAY = "moved_away"
    ERASED = "erased"
    GOALS_REACHED = "goals_reached"
    NO_CONTACT = "no_contact"
    OTHER = "other"


#: What a caseworker closes a case for; an erasure is registration's to tell (``STAFF_CLOSE_REASONS``).
STAFF_CLOSE_REASONS = (
    CaseCloseReason.GOALS_REACHED,
    CaseCloseReason.MOVED_AWAY,
    CaseCloseReason.NO_CONTACT,
    CaseCloseReason.OTHER,
)


class GoalStatus(StrEnum):
    """Where a goal of the integration plan stands (``services.referral.domain.GoalStatus``)."""

    OPEN = "open"
    IN_PROGRESS = "in_progress"
    ACHIEVED = "achieved"
    DROPPED = "dropped"


class MeetingKind(StrEnum):
    """The kinds of meeting offer (``services.partners.domain.MeetingKind``)."""

    LANGUAGE_CAFE = "language_cafe"
    OPEN_SCHOOL = "open_school"
    SPORTS_CLUB = "sports_club"
    WOMENS_GROUP = "womens_group"
    VOLUNTEER_TANDEM = "volunteer_tandem"
    MEETING_PLACE = "meeting_place"


class MeetingAudience(StrEnum):
    """Who a meeting offer is for (``services.partners.domain.MeetingAudience``)."""

    EVERYONE = "everyone"
    WOMEN = "women"
    FAMILIES = "families"
    YOUTH = "youth"
    CHILDREN = "children"
    SENIORS = "seniors"
