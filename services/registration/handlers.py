"""Event handlers of the registration service.

Registration is where personal data enters the platform; it learns nothing from
other services' events (DESIGN.md §1), so it has no handlers yet.
"""

from __future__ import annotations

CONSUMED_TOPICS: list[str] = []
