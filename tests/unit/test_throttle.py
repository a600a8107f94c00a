"""The parts of the gateway's limits on guessing that need no running gateway: who the client is behind a proxy,
how addresses are counted, and the bound on password hashing."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from pydantic import ValidationError
from starlette.requests import Request

from gateway.auth import Busy, HashingSlots
from gateway.ratelimit import MemoryLimiter
from gateway.throttle import TrustedProxies, client_key, networks
from tests.conftest import gateway_settings


async def seen_by_app(trusted: list[str], peer: str, *headers: tuple[str, str]) -> tuple[str, str]:
    """The client address and scheme an app behind ``TrustedProxies`` sees."""
    seen: dict[str, Any] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.update(scope)

    scope = {
        "type": "http",
        "client": (peer, 4711),
        "scheme": "http",
        "headers": [(k.encode(), v.encode()) for k, v in headers],
    }
    await TrustedProxies(app, networks(trusted))(scope, None, None)  # type: ignore[arg-type]
    return seen["client"][0], seen["scheme"]


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        ("10.244.1.5", "203.0.113.9", "203.0.113.9"),  # the ingress names the client
        ("10.244.1.5", "192.0.2.1, 203.0.113.9", "203.0.113.9"),  # what the client wrote itself is not believed
        ("10.244.1.5", "203.0.113.9, 10.244.7.7", "203.0.113.9"),  # through two trusted proxies
        ("10.244.1.5", "not-an-address, 10.244.7.7", "10.244.7.7"),  # nothing left of garbage is vouched for
        ("10.244.1.5", "2001:db8::1", "2001:db8::1"),
        ("192.0.2.50", "203.0.113.9", "192.0.2.50"),  # not a trusted proxy: its header means nothing
    ],
)
async def test_the_client_is_the_first_untrusted_hop_from_the_right(peer: str, forwarded: str, client: str) -> None:
    seen, _ = await seen_by_app(["10.244.0.0/16"], peer, ("x-forwarded-for", forwarded))
    assert seen == client


async def test_the_scheme_comes_only_from_a_trusted_proxy() -> None:
    assert (await seen_by_app(["10.244.0.0/16"], "10.244.1.5", ("x-forwarded-proto", "https")))[1] == "https"
    assert (await seen_by_app(["10.244.0.0/16"], "192.0.2.50", ("x-forwarded-proto", "https")))[1] == "http"


def test_trusted_proxies_must_be_addresses_or_networks(tmp_path: Any) -> None:
    assert gateway_settings(tmp_path, trusted_proxies=["10.244.0.0/16", "192.0.2.7"]).trusted_proxies
    with pytest.raises(ValidationError):
        gateway_settings(tmp_path, trusted_proxies=["ingress-nginx"])


@pytest.mark.parametrize(
    ("host", "key"),
    [
        ("203.0.113.9", "203.0.113.9"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),  # one host usually has the whole /64
        ("2001:db8:1:2:bbbb::7", "2001:db8:1:2::/64"),
        ("::ffff:203.0.113.9", "203.0.113.9"),
    ],
)
def test_addresses_are_counted_ipv4_as_they_are_and_ipv6_by_their_64(host: str, key: str) -> None:
    request = Request({"type": "http", "client": (host, 1), "headers": []})
    assert client_key(request) == key


async def test_forgiving_never_goes_below_zero_and_remembered_keys_expire() -> None:
    now = [1_000_000.0]
    limiter = MemoryLimiter(clock=lambda: now[0])
    await limiter.forgive("k")
    assert [await limiter.hit("k", 1), await limiter.hit("k", 1)] == [None, 20.0], "no credit from forgiving"
    await limiter.forgive("k")
    assert await limiter.hit("k", 1) is not None
    await limiter.remember("pair", 30)
    assert await limiter.recalls("pair")
    now[0] += 31
    assert not await limiter.recalls("pair")


async def test_a_cancelled_sign_in_holds_its_hashing_slot_until_the_hash_is_done() -> None:
    slots = HashingSlots(concurrency=1, queue=0)
    started, release = threading.Event(), threading.Event()

    def hashing() -> str:
        started.set()
        release.wait(10)
        return "done"

    first = asyncio.create_task(slots.run(hashing))
    await asyncio.to_thread(started.wait, 10)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    with pytest.raises(Busy):  # the thread still computes: its slot is still taken, and no one may queue
        await slots.run(hashing)
    release.set()
    assert await slots.run(lambda: "next", wait=True) == "next"  # once the hash is done


async def test_a_proxy_that_is_not_listed_is_said_once(caplog: pytest.LogCaptureFixture) -> None:
    clients: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        clients.append(scope["client"][0])

    gateway = TrustedProxies(app, [])
    for _ in range(3):
        scope = {"type": "http", "client": ("10.244.1.5", 4711), "headers": [(b"x-forwarded-for", b"203.0.113.9")]}
        await gateway(scope, None, None)  # type: ignore[arg-type]
    assert clients == ["10.244.1.5"] * 3
    warnings = [r for r in caplog.records if "not a trusted proxy" in r.getMessage()]
    assert len(warnings) == 1 and "203.0.113.9" not in warnings[0].getMessage()
