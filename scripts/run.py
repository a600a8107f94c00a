"""`make run`: the whole system on its embedded defaults, one command, Ctrl-C stops it all.

Starts the processes of the ``Procfile`` with honcho (the embedded broker only
when ``KAFKA_BOOTSTRAP_SERVERS`` names no Kafka of yours), waits until the
gateway is ready, loads the demo data and prints the addresses.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import honcho.manager
import httpx
from honcho.environ import parse_procfile
from honcho.manager import Manager

from chassis.embedded_broker import EmbeddedBroker, port_in_use
from scripts import demo_data

ROOT = Path(__file__).resolve().parent.parent
USERS_FILE = Path(os.environ.get("GATEWAY_LOCAL_USERS_FILE", ROOT / "var" / "gateway-users.json"))
CREDENTIALS_FILE = USERS_FILE.with_suffix(".credentials.txt")
SERVICE_PORTS = {
    "gateway": 8000,
    "registration": 8001,
    "referral": 8002,
    "courses": 8003,
    "partners": 8004,
    "monitoring": 8005,
}


def environment() -> dict[str, str]:
    env = dict(os.environ)
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = venv_bin + os.pathsep + env.get("PATH", "")
    env["PYTHONPATH"] = str(ROOT)
    # The image runs as production; `make run` is development, with demo accounts, directory, courses and figures.
    env.setdefault("ENVIRONMENT", "development")
    env.setdefault("DEMO_DATA", "true")
    env.setdefault("LOG_JSON", "false")
    # Partners' webhook receivers on this machine are allowed on the embedded default only.
    env.setdefault("PARTNERS_WEBHOOK_ALLOW_PRIVATE_ADDRESSES", "true")
    return env


def service_ports(env: dict[str, str]) -> dict[str, int]:
    """Each process's port: its ``<NAME>_PORT`` setting, or the default."""
    return {name: int(env.get(f"{name.upper()}_PORT", default)) for name, default in SERVICE_PORTS.items()}


def connect(env: dict[str, str], ports: dict[str, int]) -> None:
    """Tell the processes where the others listen (the fault-injection suite starts them the same way)."""
    for name, port in ports.items():
        if name != "gateway":
            env[f"GATEWAY_{name.upper()}_URL"] = f"http://127.0.0.1:{port}"
    env["REFERRAL_REGISTRATION_URL"] = env["GATEWAY_REGISTRATION_URL"]
    env["COURSES_REGISTRATION_URL"] = env["GATEWAY_REGISTRATION_URL"]


def announce_when_ready(gateway: str, manager: Manager) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            # The gateway is ready on its own; the platform is when every upstream it names is up too.
            ready = httpx.get(f"{gateway}/readyz", timeout=2)
            upstreams = ready.json().get("checks", {}).get("upstreams", {}) if ready.status_code == 200 else {}
            if upstreams and all(state == "ok" for state in upstreams.values()):
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    else:
        print("\n!! The gateway did not become ready within 120 s; see the log lines above.\n", flush=True)
        return
    lines = CREDENTIALS_FILE.read_text().splitlines() if CREDENTIALS_FILE.exists() else []
    credentials = dict(line.split(" ", 1) for line in lines if " " in line)
    counts: dict[str, int] = {}
    if os.environ.get("DEMO_DATA", "true").lower() not in ("1", "on", "t", "true", "y", "yes"):  # as pydantic reads it
        print("\n!! DEMO_DATA is off: no demo accounts or demo data; see README (the first admin).\n", flush=True)
    elif not {"registrar", "admin"} <= credentials.keys():
        # An admin reset or removed the demo registrar's or admin's password: its line left the file.
        print("\n!! No demo registrar or admin password in var/gateway-users.credentials.txt; demo data not loaded.\n")
    else:
        try:
            counts = demo_data.load(
                gateway,
                demo_data.sign_in(gateway, "registrar", credentials["registrar"]),
                demo_data.sign_in(gateway, "admin", credentials["admin"]),
            )
        except httpx.HTTPError as exc:
            print(f"\n!! Loading demo data failed: {exc}\n", flush=True)
    registration = f"http://127.0.0.1:{os.environ.get('REGISTRATION_PORT', '8001')}"
    referral = f"http://127.0.0.1:{os.environ.get('REFERRAL_PORT', '8002')}"
    courses = f"http://127.0.0.1:{os.environ.get('COURSES_PORT', '8003')}"
    partners = f"http://127.0.0.1:{os.environ.get('PARTNERS_PORT', '8004')}"
    monitoring = f"http://127.0.0.1:{os.environ.get('MONITORING_PORT', '8005')}"
    print(
        "\n"
        "  Landsberg am Lech integration platform is running.\n"
        f"    web UI               {gateway}/ui/\n"
        f"    gateway (API)        {gateway}/api/v1/\n"
        f"    information packs    {gateway}/api/v1/info-packs/de?format=html\n"
        f"    registration service {registration}/docs\n"
        f"    referral service     {referral}/docs\n"
        f"    courses service      {courses}/docs\n"
        f"    partners service     {partners}/docs\n"
        f"    monitoring service   {monitoring}/docs  (report: {gateway}/api/v1/monitoring/report, as analyst)\n"
        f"    course catalogue     {gateway}/api/v1/courses  partner directory {gateway}/api/v1/partners\n"
        f"    cases and referrals  {gateway}/api/v1/cases  {gateway}/api/v1/referrals\n"
        f"    broker               {os.environ.get('KAFKA_BOOTSTRAP_SERVERS', '127.0.0.1:9092 (embedded Tansu)')}\n"
        f"    demo data            {counts}\n"
        "  Sign in: POST /auth/token {username, password}, then send 'Authorization: Bearer <token>'.\n"
        f"  Demo sign-ins (from {CREDENTIALS_FILE}):\n"
        + "".join(f"    {user:<12} {password}\n" for user, password in credentials.items())
        + "  Ctrl-C stops everything.\n",
        flush=True,
    )


def marked_processes(run_pid: int) -> list[int]:
    """The processes this run started (they carry RUN_PID in their environment), this one aside."""
    mark = f"RUN_PID={run_pid}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == run_pid:
            continue
        try:
            if mark in (entry / "environ").read_bytes().split(b"\0") and b") Z " not in (entry / "stat").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue  # ended meanwhile, or not ours to read
    return found


def wait_for_marked_processes(run_pid: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while (left := marked_processes(run_pid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    if left:
        print(f"!! {len(left)} processes still running after {timeout_s:.0f}s; stopping the broker anyway", flush=True)


def main() -> int:
    os.chdir(ROOT)
    (ROOT / "var").mkdir(exist_ok=True)
    env = environment()
    processes = parse_procfile((ROOT / "Procfile").read_text()).processes
    # The embedded broker is started here, not by honcho: it must stop after the services have drained.
    processes.pop("broker")
    broker: EmbeddedBroker | None = None
    if "KAFKA_BOOTSTRAP_SERVERS" not in os.environ:  # a real Kafka is named: start none
        port = int(env.get("EMBEDDED_BROKER_PORT", "9092"))
        if port_in_use(port):
            print(
                f"Port {port} is in use. Stop what listens there (an earlier `make run`?), set "
                "EMBEDDED_BROKER_PORT to a free port, or set KAFKA_BOOTSTRAP_SERVERS to use a running Kafka.",
                file=sys.stderr,
            )
            return 1
        env["KAFKA_BOOTSTRAP_SERVERS"] = f"127.0.0.1:{port}"
        broker = EmbeddedBroker(port, log_path=ROOT / "var" / "broker.log", own_session=True)
    ports = service_ports(env)
    for name, port in ports.items():
        if port_in_use(port):
            print(f"Port {port} for the {name} is in use; stop what listens there first.", file=sys.stderr)
            return 1
    connect(env, ports)
    gateway_port = ports["gateway"]
    # On Ctrl-C honcho signals every service at once and reports each stopped when its shell ends, while the
    # service itself may still be draining (its consumer's batch, its outbox relay): wait for the processes that
    # carry this run's mark before the broker goes. Honcho's kill after KILL_WAIT is for shells that hang.
    env["RUN_PID"] = str(os.getpid())
    honcho.manager.KILL_WAIT = 45
    manager = Manager()
    for name, command in processes.items():
        manager.add_process(name, command, env=env, cwd=str(ROOT))
    os.environ["KAFKA_BOOTSTRAP_SERVERS"] = env["KAFKA_BOOTSTRAP_SERVERS"]
    if broker is not None:
        broker.start()  # before any thread: the broker's process is forked with a pre-exec hook
    threading.Thread(
        target=announce_when_ready, args=(f"http://127.0.0.1:{gateway_port}", manager), daemon=True
    ).start()
    try:
        manager.loop()
        wait_for_marked_processes(os.getpid(), timeout_s=40)
    finally:
        if broker is not None:
            broker.stop()
            print("broker stopped, after the services", flush=True)
    return manager.returncode or 0


if __name__ == "__main__":
    sys.exit(main())
