"""The Kafka clients' security settings: what aiokafka is given (TLS context, client certificate, SCRAM), a real TLS
handshake with a server that demands a client certificate as Strimzi's ``tls`` listener does, and production refusing
plaintext to a broker on another machine unless told it is meant."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import secrets
import ssl
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID
from pydantic import ValidationError

from chassis import identity
from chassis.kafka import check_client_options, client_options
from chassis.settings import ServiceSettings, bootstrap_hosts, is_local_host


def settings(**values: object) -> ServiceSettings:
    return ServiceSettings(environment="development", **values)  # type: ignore[arg-type]


# --- certificates: a CA (Strimzi's cluster and clients CA in one), a broker's and a user's ------------------------


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool = False,
    dns: list[str] | None = None,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    issuer_name, issuer_key = issuer or (_name(subject), key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if dns:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(d) for d in dns]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _write(path: Path, *items: x509.Certificate | ec.EllipticCurvePrivateKey) -> str:
    pem = b""
    for item in items:
        if isinstance(item, x509.Certificate):
            pem += item.public_bytes(serialization.Encoding.PEM)
        else:
            pem += item.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
    path.write_bytes(pem)
    return str(path)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    directory = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("cluster-ca", ca_key, None, ca=True)
    broker_key, user_key, stranger_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    broker = _certificate("landsberg-kafka", broker_key, (ca.subject, ca_key), dns=["localhost"])
    user = _certificate("kafka-registration", user_key, (ca.subject, ca_key))
    stranger_ca_key = ec.generate_private_key(ec.SECP256R1())
    stranger_ca = _certificate("another-ca", stranger_ca_key, None, ca=True)
    stranger = _certificate("kafka-registration", stranger_key, (stranger_ca.subject, stranger_ca_key))
    return {
        "ca": _write(directory / "ca.crt", ca),
        "broker.crt": _write(directory / "broker.crt", broker),
        "broker.key": _write(directory / "broker.key", broker_key),
        "user.crt": _write(directory / "user.crt", user),
        "user.key": _write(directory / "user.key", user_key),
        "stranger.crt": _write(directory / "stranger.crt", stranger),
        "stranger.key": _write(directory / "stranger.key", stranger_key),
    }


async def _handshake(pki: dict[str, str], client: ssl.SSLContext, server_hostname: str) -> str | None:
    """Connect to a TLS server that, like a Strimzi ``tls`` listener, demands a client certificate of its CA;
    returns the client certificate's common name as the server saw it (None: the handshake failed)."""
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=pki["ca"])
    server_context.verify_mode = ssl.CERT_REQUIRED
    server_context.load_cert_chain(pki["broker.crt"], pki["broker.key"])
    seen: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peercert")
        subject = dict(pair[0] for pair in peer["subject"]) if peer else {}
        if not seen.done():
            seen.set_result(subject.get("commonName"))
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=server_context)
    port = server.sockets[0].getsockname()[1]
    try:
        try:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=client, server_hostname=server_hostname
            )
        except (ssl.SSLError, ConnectionError):
            return None  # the client refused the server
        try:
            # The server hangs up after looking at the certificate, or at once when its handshake failed (with TLS
            # 1.3 the client's side completes first): either way the stream ends.
            with contextlib.suppress(ssl.SSLError, ConnectionError):
                await asyncio.wait_for(reader.read(), 5)
            return seen.result() if seen.done() else None
        finally:
            writer.close()
    finally:
        server.close()


async def _aiokafka_takes(options: dict[str, object]) -> None:
    """Every kind of client the chassis makes accepts the options as they are (it checks them when made)."""
    producer = AIOKafkaProducer(**options)
    consumer = AIOKafkaConsumer(**options)
    admin = AIOKafkaAdminClient(**options)
    await producer.stop()
    await consumer.stop()
    await admin.close()


# --- what aiokafka is given ---------------------------------------------------------------------------------------


def test_plaintext_by_default_for_the_embedded_broker() -> None:
    options = client_options(settings())
    assert options == {"bootstrap_servers": "127.0.0.1:9092", "security_protocol": "PLAINTEXT"}


def test_tls_with_a_client_certificate_is_what_a_strimzi_tls_listener_accepts(pki: dict[str, str]) -> None:
    options = client_options(
        settings(
            kafka_bootstrap_servers="landsberg-kafka-bootstrap:9093",
            kafka_security_protocol="SSL",
            kafka_ssl_cafile=pki["ca"],
            kafka_ssl_certfile=pki["user.crt"],
            kafka_ssl_keyfile=pki["user.key"],
        )
    )
    context = options["ssl_context"]
    assert options["security_protocol"] == "SSL"
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
    asyncio.run(_aiokafka_takes(options))
    assert asyncio.run(_handshake(pki, context, "localhost")) == "kafka-registration"


def test_the_broker_is_checked_by_its_ca_and_host_name(pki: dict[str, str]) -> None:
    trusting_nobody = client_options(
        settings(
            kafka_security_protocol="SSL",
            kafka_ssl_certfile=pki["user.crt"],
            kafka_ssl_keyfile=pki["user.key"],
        )
    )["ssl_context"]
    assert asyncio.run(_handshake(pki, trusting_nobody, "localhost")) is None  # the system CAs do not know it
    right_ca = client_options(
        settings(
            kafka_security_protocol="SSL",
            kafka_ssl_cafile=pki["ca"],
            kafka_ssl_certfile=pki["user.crt"],
            kafka_ssl_keyfile=pki["user.key"],
        )
    )["ssl_context"]
    assert asyncio.run(_handshake(pki, right_ca, "kafka.elsewhere.example")) is None  # not the broker's name


def test_the_broker_refuses_a_client_without_its_ca_s_certificate(pki: dict[str, str]) -> None:
    for certificate, key in ((None, None), (pki["stranger.crt"], pki["stranger.key"])):
        context = client_options(
            settings(
                kafka_security_protocol="SSL",
                kafka_ssl_cafile=pki["ca"],
                kafka_ssl_certfile=certificate,
                kafka_ssl_keyfile=key,
            )
        )["ssl_context"]
        # TLS 1.3: the client's handshake completes before the server checks its certificate and hangs up
        assert asyncio.run(_handshake(pki, context, "localhost")) is None


def test_scram_over_tls() -> None:
    options = client_options(
        settings(
            kafka_security_protocol="SASL_SSL",
            kafka_sasl_username="kafka-referral",
            kafka_sasl_password="s3cret",
        )
    )
    assert options["security_protocol"] == "SASL_SSL"
    assert isinstance(options["ssl_context"], ssl.SSLContext)
    assert (options["sasl_mechanism"], options["sasl_plain_username"], options["sasl_plain_password"]) == (
        "SCRAM-SHA-512",
        "kafka-referral",
        "s3cret",
    )
    asyncio.run(_aiokafka_takes(options))
    with pytest.raises(ValidationError, match="KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"):
        settings(kafka_security_protocol="SASL_SSL", kafka_sasl_username="kafka-referral")


def test_a_certificate_needs_its_key(pki: dict[str, str]) -> None:
    with pytest.raises(ValidationError, match="KAFKA_SSL_CERTFILE and KAFKA_SSL_KEYFILE"):
        settings(kafka_security_protocol="SSL", kafka_ssl_certfile=pki["user.crt"])


def test_unreadable_certificate_files_stop_the_start_by_name(tmp_path: Path) -> None:
    missing = settings(kafka_security_protocol="SSL", kafka_ssl_cafile=str(tmp_path / "ca.crt"))
    with pytest.raises(RuntimeError, match="KAFKA_SSL_CAFILE"):
        check_client_options(missing)
    check_client_options(settings())  # plaintext reads no files


# --- production and plaintext -------------------------------------------------------------------------------------


@pytest.fixture
def production(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """ENVIRONMENT=production with everything else production needs of a process."""
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv(
        "INTERNAL_IDENTITY_GATEWAY_PUBLIC_KEY", identity.encode_public(Ed25519PrivateKey.generate().public_key())
    )
    monkeypatch.setenv("IDEMPOTENCY_SECRET", secrets.token_urlsafe(32))
    return monkeypatch


@pytest.mark.parametrize("servers", ["landsberg-kafka-bootstrap:9092", "127.0.0.1:9092,10.0.0.5:9092"])
def test_production_refuses_plaintext_to_another_machine(production: pytest.MonkeyPatch, servers: str) -> None:
    production.setenv("KAFKA_BOOTSTRAP_SERVERS", servers)
    with pytest.raises(ValidationError, match=r"KAFKA_SECURITY_PROTOCOL=PLAINTEXT to .* is refused"):
        ServiceSettings()
    production.setenv("KAFKA_ALLOW_PLAINTEXT", "true")  # said out loud: accepted
    assert ServiceSettings().kafka_security_protocol == "PLAINTEXT"
    production.delenv("KAFKA_ALLOW_PLAINTEXT")
    production.setenv("KAFKA_SECURITY_PROTOCOL", "SSL")
    assert ServiceSettings().kafka_security_protocol == "SSL"
    production.setenv("ENVIRONMENT", "test")  # only production refuses it
    production.setenv("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT")
    assert ServiceSettings().kafka_security_protocol == "PLAINTEXT"


@pytest.mark.parametrize("servers", ["127.0.0.1:9092", "localhost:9092", "[::1]:9092"])
def test_plaintext_to_this_machine_is_no_network(production: pytest.MonkeyPatch, servers: str) -> None:
    production.setenv("KAFKA_BOOTSTRAP_SERVERS", servers)
    assert ServiceSettings().kafka_bootstrap_servers == servers


def test_bootstrap_hosts() -> None:
    assert bootstrap_hosts("a:9092, b.c:9093,[::1]:9092,d") == ["a", "b.c", "::1", "d"]
    assert [is_local_host(h) for h in ("127.0.0.5", "::1", "localhost", "10.0.0.1", "kafka")] == [
        True,
        True,
        True,
        False,
        False,
    ]
