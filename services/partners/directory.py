"""The directory the partners service starts with: Landsberg am Lech's actors of integration work.

The ids are those the referral service already routes to. Only facts that are certain are
here: no phone numbers, street addresses or web addresses are made up; the partners fill in
their own entries (``PATCH /api/v1/partners/{id}``). The city hall address is real.
"""

from __future__ import annotations

from typing import Any

LANDSBERG_PARTNERS: list[dict[str, Any]] = [
    {
        "id": "caritas-landsberg",
        "name": "Caritasverband Landsberg am Lech",
        "category": "charity",
        "description": "Asylsozialberatung und Migrationsberatung für erwachsene Zuwanderer (MBE).",
        "languages": ["de", "en", "ar", "fa", "ru", "tr"],
        "services": [
            {"service_type": "asylum_social_counselling", "name": "Asylsozialberatung", "free_places": 25,
             "languages": ["de", "en", "ar", "fa"], "response_days": 5,
             "eligibility": "Asylsuchende und Geduldete im Landkreis Landsberg am Lech"},
            {"service_type": "migration_counselling", "name": "Migrationsberatung für erwachsene Zuwanderer (MBE)",
             "free_places": 20, "languages": ["de", "en", "ru", "tr"], "response_days": 5,
             "eligibility": "Zugewanderte ab 27 Jahren"},
        ],
    },
    {
        "id": "jmd-landsberg",
        "name": "Jugendmigrationsdienst (JMD) Landsberg am Lech",
        "category": "youth_service",
        "description": "Begleitung junger Zugewanderter bei Schule, Ausbildung und Beruf.",
        "languages": ["de", "en", "ar"],
        "services": [
            {"service_type": "youth_migration_service", "name": "Jugendmigrationsdienst", "free_places": 12,
             "languages": ["de", "en", "ar"], "response_days": 5, "eligibility": "Junge Zugewanderte unter 27 Jahren"},
        ],
    },
    {
        "id": "vhs-landsberg",
        "name": "Volkshochschule Landsberg am Lech",
        "category": "adult_education",
        "description": "Integrationskurse und Deutschkurse, auch mit Kinderbetreuung.",
        "languages": ["de", "en"],
        "services": [
            {"service_type": "integration_course", "name": "Integrationskurs", "free_places": 40,
             "languages": ["de", "en"], "response_days": 5, "eligibility": None},
            {"service_type": "course_with_childcare", "name": "Deutschkurs mit Kinderbetreuung", "free_places": 10,
             "languages": ["de", "en"], "response_days": 5, "eligibility": "Eltern mit Kindern ohne Betreuungsplatz"},
        ],
    },
    {
        "id": "jobcenter-landsberg",
        "name": "Jobcenter Landsberg am Lech",
        "category": "job_centre",
        "description": "Arbeitsvermittlung und Leistungen der Grundsicherung für Arbeitsuchende.",
        "languages": ["de", "en"],
        "services": [
            {"service_type": "job_placement", "name": "Arbeitsvermittlung", "free_places": None,
             "languages": ["de", "en"], "response_days": 5, "eligibility": None},
        ],
    },
    {
        "id": "ihk-muenchen-oberbayern",
        "name": "IHK für München und Oberbayern",
        "alternate_name": "IHK FOSA",
        "category": "chamber",
        "description": "Beratung zur Anerkennung ausländischer Berufsabschlüsse (IHK FOSA).",
        "languages": ["de", "en"],
        "services": [
            {"service_type": "qualification_recognition", "name": "Anerkennungsberatung", "free_places": None,
             "languages": ["de", "en"], "response_days": 10,
             "eligibility": "Personen mit einem ausländischen Berufsabschluss in einem IHK-Beruf"},
        ],
    },
    {
        "id": "stadt-landsberg-integration",
        "name": "Stadt Landsberg am Lech: Integrationsstelle",
        "category": "city_department",
        "description": "Integrationsstelle der Stadt: Lotsen, Wohnungsfragen, Vernetzung der Partner.",
        "languages": ["de", "en"],
        "locations": [
            {"name": "Rathaus Landsberg am Lech", "address_1": "Katharinenstraße 1", "city": "Landsberg am Lech",
             "postal_code": "86899", "country": "DE"},
        ],
        "services": [
            {"service_type": "housing_advice", "name": "Wohnungsberatung", "free_places": None,
             "languages": ["de", "en"], "response_days": 5, "eligibility": None},
        ],
    },
    {
        "id": "landratsamt-landsberg",
        "name": "Landratsamt Landsberg am Lech",
        "category": "district_office",
        "description": "Behörde des Landkreises Landsberg am Lech.",
        "languages": ["de"],
        "services": [],
    },
]  # fmt: skip
