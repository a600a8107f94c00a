"""The pure tests' shared settings."""

from __future__ import annotations

import functools
from collections.abc import Iterator

import argon2
import pytest

import gateway.auth


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """argon2id as in production, with a small memory and time cost: a hash at the production cost (64 MiB) takes
    a good part of a second, and the demo accounts alone are six of them; `make test-fast` is meant for seconds.
    The service and browser tests sign in at the production cost."""
    monkeypatch.setattr(
        gateway.auth, "PasswordHasher", functools.partial(argon2.PasswordHasher, time_cost=1, memory_cost=1024)
    )
    yield
