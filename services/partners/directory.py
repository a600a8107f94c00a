"""The directory the partners service starts with (demo data): Landsberg am Lech's actors of integration work.

Read from the file the city's reference data ships in, ``reference/landsberg/partners.json``, which
``scripts/load_reference_data.py`` loads into a running platform too: one source of Landsberg's
directory. The file names its sources; it holds only facts that are certain (no phone numbers,
street addresses or web addresses made up). The ids are those the referral service routes to.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from reference import HERE as REFERENCE
from services.partners.schemas import PartnerCreate

LANDSBERG_FILE: Path = REFERENCE / "landsberg" / "partners.json"


def read_partners(path: Path) -> list[PartnerCreate]:
    """A reference file's partners, checked as the API checks a new partner (``POST /api/v1/partners``)."""
    document = json.loads(path.read_text(encoding="utf-8"))
    return [PartnerCreate.model_validate(entry) for entry in document["partners"]]


def seed_entries(partners: list[PartnerCreate]) -> list[dict[str, Any]]:
    """The partners in the shape the demo seeding takes: the partner's columns with ``id``, and its services."""
    entries = []
    for partner in partners:
        entry = partner.model_dump(mode="json", exclude={"partner_id", "services", "website"})
        entry["id"] = partner.partner_id
        entry["services"] = [service.model_dump(mode="json") for service in partner.services]
        entries.append(entry)
    return entries


LANDSBERG_PARTNERS: list[dict[str, Any]] = seed_entries(read_partners(LANDSBERG_FILE))


#: Meeting offers (Begegnung) for the demo: EXAMPLES of the kinds the city names, kept by the city's integration
#: office and the VHS; no such dates or places are published, so each says it is an example.
EXAMPLE = "Beispielangebot (Demodaten): Ort und Zeit bestätigt der Veranstalter."
LANDSBERG_MEETING_OFFERS: list[dict[str, Any]] = [
    {"partner_id": "stadt-landsberg-integration", "kind": "language_cafe", "title": "Sprachcafé",
     "description": f"Deutsch sprechen bei Kaffee und Tee, jedes Niveau ist willkommen. {EXAMPLE}",
     "languages": ["de", "en", "ar", "uk"], "audience": "everyone", "schedule": "jeden Dienstag, 17 bis 19 Uhr",
     "place_name": "Rathaus Landsberg am Lech", "address": "Katharinenstraße 1", "district": "Altstadt"},
    {"partner_id": "stadt-landsberg-integration", "kind": "womens_group", "title": "Frauentreff",
     "description": f"Austausch unter Frauen, mit Kinderbetreuung. {EXAMPLE}",
     "languages": ["de", "ar", "fa"], "audience": "women", "schedule": "jeden zweiten Donnerstag, 9 bis 11 Uhr",
     "place_name": "Beispiel: Familienzentrum", "district": "Weststadt", "childcare": True},
    {"partner_id": "stadt-landsberg-integration", "kind": "volunteer_tandem", "title": "Ehrenamtliche Tandems",
     "description": f"Eine Landsbergerin oder ein Landsberger begleitet Sie im Alltag. {EXAMPLE}",
     "languages": ["de", "en", "ru", "uk"], "audience": "everyone", "schedule": "nach Vereinbarung",
     "place_name": "Rathaus Landsberg am Lech", "address": "Katharinenstraße 1", "district": "Altstadt"},
    {"partner_id": "vhs-landsberg", "kind": "open_school", "title": "Offene Schule am Abend",
     "description": f"Offene Räume zum Lernen und Kennenlernen, Hausaufgabenhilfe für Kinder. {EXAMPLE}",
     "languages": ["de", "en"], "audience": "families", "schedule": "jeden Mittwoch, 16 bis 18 Uhr",
     "place_name": "Volkshochschule Landsberg am Lech", "district": "Altstadt"},
    {"partner_id": "stadt-landsberg-integration", "kind": "sports_club", "title": "Fußball für alle",
     "description": f"Offenes Training für Jugendliche und Erwachsene. {EXAMPLE}",
     "languages": ["de", "en", "ar", "tr"], "audience": "youth", "schedule": "jeden Samstag, 10 bis 12 Uhr",
     "place_name": "Beispiel: Sportplatz", "district": "Schwaighofsiedlung"},
]  # fmt: skip
