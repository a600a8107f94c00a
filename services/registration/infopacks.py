"""The multilingual information pack (Grundinformation): loading and rendering."""

from __future__ import annotations

import json
from functools import lru_cache
from html import escape
from pathlib import Path
from typing import Any

PACK_DIR = Path(__file__).parent / "infopacks"


@lru_cache(maxsize=1)
def load_packs() -> dict[str, dict[str, Any]]:
    return {path.stem: json.loads(path.read_text(encoding="utf-8")) for path in sorted(PACK_DIR.glob("*.json"))}


def render_html(pack: dict[str, Any]) -> str:
    sections = []
    for section in pack["sections"]:
        contacts = "".join(
            f"<li><strong>{escape(c['name'])}</strong>: {escape(c['detail'])}</li>" for c in section["contacts"]
        )
        sections.append(
            f'<section id="{escape(section["id"])}"><h2>{escape(section["heading"])}</h2>'
            f"<p>{escape(section['body'])}</p>{f'<ul>{contacts}</ul>' if contacts else ''}</section>"
        )
    others = " · ".join(
        f'<a href="{escape(code)}?format=html" hreflang="{escape(code)}" lang="{escape(code)}">'
        f"{escape(p['language_name'])}</a>"
        for code, p in load_packs().items()
    )
    return (
        f'<!doctype html><html lang="{escape(pack["lang"])}" dir="{escape(pack["dir"])}"><head>'
        '<meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(pack['title'])}</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:42rem;margin:auto;padding:1rem;line-height:1.5;"
        "color:#1a1a1a}h1{color:#00457d}h2{color:#00457d;font-size:1.2rem}nav a{color:#00457d}</style>"
        f'</head><body><nav aria-label="languages">{others}</nav><main><h1>{escape(pack["title"])}</h1>'
        f"<p>{escape(pack['intro'])}</p>{''.join(sections)}</main></body></html>"
    )
