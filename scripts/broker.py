"""Run the embedded Kafka-API broker in the foreground (a Procfile process)."""

from __future__ import annotations

import os

from chassis.embedded_broker import broker_command


def main() -> None:
    port = int(os.environ.get("EMBEDDED_BROKER_PORT", "9092"))
    command = broker_command(port)
    os.execv(command[0], command)  # noqa: S606 - replace this process with the broker (honcho signals it)


if __name__ == "__main__":
    main()
