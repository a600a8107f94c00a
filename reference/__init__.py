"""Reference data of the cities the platform serves: one folder per city, plain JSON files.

``scripts/load_reference_data.py`` loads a folder through the gateway's public API (partners with
their services, district populations, courses, optionally the caseworker roster). The partners
service's demo directory is read from ``landsberg/partners.json`` too, so there is one source of
Landsberg's directory; registration's block lookup and the monitoring's demo blocks read
``landsberg/blocks.json``. See ``README.md`` for the files' format.
"""

from __future__ import annotations

from pathlib import Path

#: The folder of this package: ``HERE / "landsberg" / "partners.json"``.
HERE = Path(__file__).parent
