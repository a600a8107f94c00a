"""A person's access log and data export (GDPR Art. 15) across the services: the gateway's one merge.

``GET /api/v1/persons/{id}/access-log`` and ``GET /api/v1/persons/{id}/export`` pass the role policy like any other
route; then, instead of forwarding to registration alone, the gateway

1. asks registration, with the caller's identity signed for it: registration decides whether the caller reaches the
   person (a caseworker: the team's open cases; the export: privacy officers and admins only) and logs the read;
   any answer but 200 goes back to the caller as it is (403, 404, 410...);
2. then asks referral, courses and partners the same route with the caller's identity signed for each; each checks
   the caller again for itself (services never trust the gateway's role check alone) and answers its part;
3. merges: the log newest first, in the one shape of ``chassis.audit.AccessLogEntry``; the export as one section
   per service, monitoring's saying that it holds only anonymous aggregates, and the merged log.

A log a service cannot give (down, or it refuses the caller: partners knows no caseworker's team) is left out and
named in the header ``Access-Log-Incomplete``; an export is all or nothing (503 naming the service), since an
Art. 15 answer that quietly misses a service would be wrong.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx

from chassis.identity import Identity

#: ``/api/v1/persons/{id}/access-log`` and ``.../export``: the routes the gateway merges.
MERGED = re.compile(r"^persons/(?P<person_id>[^/]+)/(?P<what>access-log|export)$")
#: The services asked after registration, each by a path segment it owns (the identity is signed for its owner).
OTHERS = {"referral": "cases", "courses": "learners", "partners": "partners"}
REGISTRATION_SEGMENT = "persons"
MONITORING = {
    "service": "monitoring",
    "holds": "anonymous aggregates only: counts by period, district and group, with small cells withheld; "
    "no row about a single person, so nothing of this person",
}
INCOMPLETE_HEADER = "Access-Log-Incomplete"

IdentityHeaders = Callable[[Identity, str], list[tuple[str, str]]]


@dataclass
class Merged:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    content: bytes | None = None  # registration's own answer, passed on as it is
    unavailable: str | None = None  # why there is no answer (503)


async def merged(
    client: httpx.AsyncClient,
    routes: dict[str, str],
    identity_headers: IdentityHeaders,
    caller: Identity,
    person_id: str,
    what: str,
    request_id: str,
) -> Merged:
    """The merged access log (``what`` "access-log") or export ("export") of one person, as the caller may read it."""
    path = f"/api/v1/persons/{quote(person_id, safe='')}/{what}"

    async def ask(segment: str) -> httpx.Response | None:
        headers = [("x-request-id", request_id), *identity_headers(caller, segment)]
        try:
            return await client.get(f"{routes[segment]}{path}", headers=headers)
        except httpx.HTTPError:
            return None

    first = await ask(REGISTRATION_SEGMENT)
    if first is None:
        return Merged(503, None, unavailable="The registration service is not reachable; try again shortly.")
    if first.status_code != 200:
        return Merged(first.status_code, None, {"content-type": first.headers.get("content-type", "")}, first.content)
    replies = dict(zip(OTHERS, await asyncio.gather(*(ask(s) for s in OTHERS.values())), strict=True))
    if what == "access-log":
        entries = list(first.json())
        missing = []
        for service, reply in replies.items():
            if reply is not None and reply.status_code == 200:
                entries += reply.json()
            else:
                missing.append(service)
        headers = {INCOMPLETE_HEADER: ", ".join(missing)} if missing else {}
        return Merged(200, newest_first(entries), headers)
    failed = [s for s, r in replies.items() if r is None or r.status_code != 200]
    if failed:
        return Merged(503, None, unavailable=f"No export: {', '.join(failed)} did not answer; try again shortly.")
    sections: dict[str, Any] = {"registration": first.json()}
    sections.update({service: reply.json() for service, reply in replies.items() if reply is not None})
    log: list[dict[str, Any]] = []
    for section in sections.values():
        log += section.pop("access_log", [])
    sections["monitoring"] = MONITORING
    return Merged(
        200,
        {
            "person_id": person_id,
            "exported_at": datetime.now(UTC).isoformat(),
            "exported_by": caller.actor,
            "sections": sections,
            "access_log": newest_first(log),
        },
    )


def newest_first(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(entries, key=lambda e: datetime.fromisoformat(e["at"].replace("Z", "+00:00")), reverse=True)
