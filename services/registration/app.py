"""Wiring of the registration service: settings, app factory.

Run: ``uvicorn --factory services.registration.app:create_app``.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from pydantic_settings import SettingsConfigDict

from chassis.clock import Clock, system_clock
from chassis.service import ServiceRuntime, ServiceSpec, create_service_app
from chassis.settings import ServiceSettings
from contracts import registration as events
from services.registration import api, blocks
from services.registration.handlers import CONSUMED_TOPICS, make_handlers
from services.registration.models import messaging
from services.registration.runtime import RegistrationRuntime

#: Landsberg am Lech's Ortsteile; another city sets REGISTRATION_DISTRICTS (a JSON list).
LANDSBERG_DISTRICTS = [
    "Altstadt",
    "Katharinenvorstadt",
    "Neuerpfting",
    "Weststadt",
    "Schwaighofsiedlung",
    "Bayervorstadt",
    "Sandau",
    "Pössing",
    "Ellighofen",
    "Erpfting",
    "Friedheim",
    "Geratshof",
    "Mittelstetten",
    "Pitzling",
    "Pöring",
    "Reisch",
    "Thalhofen",
]


class RegistrationSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="REGISTRATION_", extra="ignore")

    service_name: str = "registration"
    port: int = 8001
    database_url: str = "sqlite+aiosqlite:///var/registration.db"
    districts: list[str] = LANDSBERG_DISTRICTS
    #: The city's residential blocks (``REGISTRATION_BLOCKS_FILE``, a JSON file as ``reference/landsberg/blocks.json``):
    #: an address's block id goes into the person's events, never the address. Empty: no blocks.
    blocks_file: str = str(blocks.LANDSBERG_BLOCKS_FILE)
    #: The referral service's public identity key (base64 of the raw 32-byte Ed25519 key): it alone may ask for
    #: a person's contact data, for a partner with the person's consent.
    #: ``REGISTRATION_INTERNAL_IDENTITY_REFERRAL_PUBLIC_KEY``.
    internal_identity_referral_public_key: str | None = None
    #: The courses service's public identity key: it alone may ask for the holder's name of an education pass.
    #: ``REGISTRATION_INTERNAL_IDENTITY_COURSES_PUBLIC_KEY``.
    internal_identity_courses_public_key: str | None = None

    NEEDED_OUTSIDE_DEVELOPMENT = (
        *ServiceSettings.NEEDED_OUTSIDE_DEVELOPMENT,
        "internal_identity_referral_public_key",
        "internal_identity_courses_public_key",
    )
    IDENTITY_KEYS = {
        **ServiceSettings.IDENTITY_KEYS,
        "internal_identity_referral_public_key": "referral",
        "internal_identity_courses_public_key": "courses",
    }
    KEY_LISTS = ServiceSettings.KEY_LISTS | {
        "internal_identity_referral_public_key",
        "internal_identity_courses_public_key",
    }

    def trusted_service_keys(self) -> dict[str, str | None]:
        return {
            "referral": self.internal_identity_referral_public_key,
            "courses": self.internal_identity_courses_public_key,
        }


def create_app(settings: RegistrationSettings | None = None, clock: Clock = system_clock) -> FastAPI:
    settings = settings or RegistrationSettings()
    districts = tuple(settings.districts)
    block_index = blocks.load_file(settings.blocks_file, districts)  # a bad block reference stops the start

    async def on_startup(runtime: ServiceRuntime) -> None:
        runtime.own = RegistrationRuntime(districts=districts, block_index=block_index)

    spec = ServiceSpec(
        name="registration",
        title="Registration service",
        description="Newcomers' registration (Anmeldung), needs, consents and the multilingual information pack.",
        tables=messaging,
        migrations_dir=Path(__file__).parent / "migrations",
        published_topics=[events.PERSONS_TOPIC],
        routers=[api.router, api.internal_router],
        handlers=lambda runtime: make_handlers(),
        consumed_topics=CONSUMED_TOPICS,
        on_startup=on_startup,
        clock=clock,  # "today" for ages, birth dates, consents' expiry
    )
    return create_service_app(spec, settings)
