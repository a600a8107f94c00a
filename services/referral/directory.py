"""Reference data the referral service starts with (embedded default and demo).

Partner offers are the directory as referral knows it until the partners service's events arrive
(``partner_registered``, ``service_offered``, ``partner_capacity_changed``): read from the same file the partners
service seeds its directory from, ``reference/landsberg/partners.json``, so there is one source of Landsberg's
directory. Each offer is what a ``service_offered`` event of that entry tells (the service's name, languages,
response days and free places), so the events replace the start-up rows without changing them. A referral
service started alone (its tests, the bench) routes to them; with the partners service the events keep them current.
The roster is a demo team of integration navigators, ``demo_roster.json`` beside this module (in the shape of
``reference/landsberg/roster.example.json``); a city replaces it through its own data (the gateway's staff accounts,
issue 6). The routing rules referral follows until an admin saves a rule set of its own are data too:
``routing_rules.json`` (each rule as ``PUT /routing-rules`` takes it), from the seed (Landsberg 2035, HF 1 "Bildung +
Soziales"), with the routes for every need the city names (issue 18).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from reference import HERE as REFERENCE
from services.referral.domain import RuleSet

LANDSBERG_FILE: Path = REFERENCE / "landsberg" / "partners.json"
#: This module's folder, where the rules and the demo roster lie.
HERE = Path(__file__).parent
#: What ``POST /api/v1/partners`` takes when a service omits it (services/partners/schemas.py).
DEFAULT_RESPONSE_DAYS = 5


def read_partner_offers(path: Path) -> list[dict[str, Any]]:
    """A reference file's services as referral's partner offers (the columns of ``PartnerOfferRow``)."""
    document = json.loads(path.read_text(encoding="utf-8"))
    return [
        {
            "partner_id": partner["partner_id"],
            "partner_name": service["name"],
            "partner_category": partner["category"],
            "service_type": service["service_type"],
            "free_places": service.get("free_places"),
            "languages": list(service["languages"]),
            "response_days": service.get("response_days", DEFAULT_RESPONSE_DAYS),
        }
        for partner in document["partners"]
        for service in partner["services"]
    ]


LANDSBERG_PARTNER_OFFERS: list[dict[str, Any]] = read_partner_offers(LANDSBERG_FILE)

#: The shipped rule set (a broken file stops the start, as a broken rule would).
DEFAULT_RULES: RuleSet = RuleSet.model_validate_json((HERE / "routing_rules.json").read_bytes())

DEMO_ROSTER: list[dict[str, Any]] = json.loads((HERE / "demo_roster.json").read_text(encoding="utf-8"))["caseworkers"]
