"""Reference data the referral service starts with (embedded default and demo).

Partner offers are the directory as referral knows it until the partners
service (issue 5) publishes capacity; the roster is a demo team of integration
navigators. A city replaces both: partners through events, the roster through
its own data (the gateway's staff accounts, issue 6).
"""

from __future__ import annotations

from typing import Any

LANDSBERG_PARTNER_OFFERS: list[dict[str, Any]] = [
    {"partner_id": "caritas-landsberg", "partner_name": "Caritas Landsberg am Lech: Asylsozialberatung",
     "partner_category": "charity", "service_type": "asylum_social_counselling", "free_places": 25,
     "languages": ["de", "en", "ar", "fa"], "response_days": 5},
    {"partner_id": "caritas-landsberg", "partner_name": "Caritas Landsberg am Lech: Migrationsberatung (MBE)",
     "partner_category": "charity", "service_type": "migration_counselling", "free_places": 20,
     "languages": ["de", "en", "ru", "tr"], "response_days": 5},
    {"partner_id": "jmd-landsberg", "partner_name": "Jugendmigrationsdienst (JMD)",
     "partner_category": "youth_service", "service_type": "youth_migration_service", "free_places": 12,
     "languages": ["de", "en", "ar"], "response_days": 5},
    {"partner_id": "vhs-landsberg", "partner_name": "Volkshochschule Landsberg am Lech",
     "partner_category": "adult_education", "service_type": "integration_course", "free_places": 40,
     "languages": ["de", "en"], "response_days": 5},
    {"partner_id": "vhs-landsberg", "partner_name": "Volkshochschule Landsberg am Lech: Kurse mit Kinderbetreuung",
     "partner_category": "adult_education", "service_type": "course_with_childcare", "free_places": 10,
     "languages": ["de", "en"], "response_days": 5},
    {"partner_id": "jobcenter-landsberg", "partner_name": "Jobcenter Landsberg am Lech",
     "partner_category": "job_centre", "service_type": "job_placement", "free_places": None,
     "languages": ["de", "en"], "response_days": 5},
    {"partner_id": "ihk-muenchen-oberbayern", "partner_name": "IHK für München und Oberbayern (IHK FOSA)",
     "partner_category": "chamber", "service_type": "qualification_recognition", "free_places": None,
     "languages": ["de", "en"], "response_days": 10},
    {"partner_id": "stadt-landsberg-integration", "partner_name": "Stadt Landsberg am Lech: Integrationsstelle",
     "partner_category": "city_department", "service_type": "housing_advice", "free_places": None,
     "languages": ["de", "en"], "response_days": 5},
    {"partner_id": "stadt-landsberg-integration", "partner_name": "Stadt Landsberg am Lech: Begegnung",
     "partner_category": "city_department", "service_type": "meeting_offer", "free_places": None,
     "languages": ["de", "en"], "response_days": 5},
    {"partner_id": "landratsamt-landsberg", "partner_name": "Landratsamt Landsberg am Lech: Gesundheitsamt",
     "partner_category": "district_office", "service_type": "health_advice", "free_places": None,
     "languages": ["de"], "response_days": 10},
    {"partner_id": "iq-netzwerk-bayern", "partner_name": "IQ Netzwerk Bayern (MigraNet): Anerkennungsberatung",
     "partner_category": "charity", "service_type": "recognition_counselling", "free_places": None,
     "languages": ["de", "en"], "response_days": 10},
    {"partner_id": "eures-deutschland", "partner_name": "EURES Deutschland (Bundesagentur für Arbeit)",
     "partner_category": "job_centre", "service_type": "eu_job_mobility", "free_places": None,
     "languages": ["de", "en"], "response_days": 10},
    # Examples (see reference/landsberg/partners.json): the provider in Landsberg is not confirmed.
    {"partner_id": "beispiel-berufssprachkurs", "partner_name": "Beispiel: Träger der Berufssprachkurse (BAMF)",
     "partner_category": "adult_education", "service_type": "job_specific_german", "free_places": 15,
     "languages": ["de"], "response_days": 10},
    {"partner_id": "beispiel-rueckkehrberatung", "partner_name": "Beispiel: Rückkehr- und Perspektivberatung",
     "partner_category": "charity", "service_type": "return_counselling", "free_places": 10,
     "languages": ["de", "en", "ar", "fa"], "response_days": 10},
]  # fmt: skip

DEMO_ROSTER: list[dict[str, Any]] = [
    {"id": "lotse-a.berger", "name": "Anna Berger", "team": "integration-nord",
     "languages": ["de", "en", "ar"], "max_cases": 60},
    {"id": "lotse-k.yildiz", "name": "Kemal Yildiz", "team": "integration-nord",
     "languages": ["de", "tr", "en"], "max_cases": 60},
    {"id": "lotse-m.wagner", "name": "Maria Wagner", "team": "integration-sued",
     "languages": ["de", "ru", "uk"], "max_cases": 60},
    {"id": "lotse-s.rahimi", "name": "Sara Rahimi", "team": "integration-sued",
     "languages": ["de", "fa", "en"], "max_cases": 45},
]  # fmt: skip
