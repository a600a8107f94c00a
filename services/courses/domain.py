"""Course rules: eligibility, overlaps, the waiting list's fair order, seat offers, the enrolment
lifecycle, and the signed education pass (Bildungspass). Pure: no I/O, no framework.

Who may act on what (object-level rules, :class:`Caller`): an admin on everything; a course admin on the
courses of their own provider, and on the learners enrolled there; a caseworker on the people of their team's
open cases (without a team: the cases assigned to them); a registrar reads pass pages. A course admin is tied
to their provider by the ``partner_id`` of their sign-in, the same claim that ties partner staff to their
organisation (VHS Landsberg is the partner ``vhs-landsberg``).

Waiting-list order (documented, configurable): entries are ranked by the configured priority
criteria in turn (default: an obligation to attend an integration course first, then women who
need childcare, since the seed names women a priority group), then by the moment the request was
received, then by enrolment id as a last, stable tie-break.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from contracts.vocabulary import AGE_BAND_YEARS, AgeBand, Gender, GermanLevel, ServiceType

# The course categories, funding and results are the platform's vocabulary (the staff UI offers them).
from contracts.vocabulary import CompletionResult as CompletionResult
from contracts.vocabulary import CourseCategory as CourseCategory
from contracts.vocabulary import Funding as Funding


class CourseError(ValueError):
    """A rule of the course catalogue or enrolment was broken: ``kind`` names the rule (the Problem type the API
    answers with, so that a client need not read the English message), ``values`` what matters of it."""

    kind = "course-rule"

    def __init__(self, message: str, kind: str | None = None, **values: Any) -> None:
        super().__init__(message)
        if kind is not None:
            self.kind = kind
        self.values = values


class InvalidTransition(CourseError):
    kind = "invalid-transition"


#: Every rule a refusal can name, as its Problem type (``https://integration.landsberg.de/problems/<kind>``), with
#: the members that say what matters of it; the API documents these, and the staff UI words each of them.
RULES: dict[str, str] = {
    "course-women-only": "422: the course is for women only",
    "course-level-reached": "422: the person's German `level` already reaches the course's `target` level",
    "course-min-age": "422: the course is from age `min_age`",
    "course-max-age": "422: the course is up to age `max_age`",
    "course-sessions-clash": "422: the sessions overlap with another course of this person",
    "course-enrolment-closed": "422: enrolment for this course is not open now",
    "course-cancelled": "422: the course is cancelled",
    "course-completed": "422: the course is completed",
    "course-unknown": "422: there is no such course",
    "course-learner-erased": "422: this person's data has been erased",
    "course-completion-in-future": "422: a completion date cannot lie in the future",
    "course-session-order": "422: a session must end after it starts",
    "course-sessions-overlap": "422: sessions of one course must not overlap",
    "course-capacity-taken": "422: `taken` seats are taken; the capacity cannot go below that",
    "course-field-required": "422: the `field` cannot be removed",
    "course-last-session": "422: a course keeps at least one session",
    "course-already-enrolled": "409: the person is already enrolled in or waiting for this course",
    "course-offer-expired": "409: the seat offer has expired",
    "course-session-attended": "409: attendance is recorded for this session; it cannot be removed",
    "invalid-transition": "409: not possible for an enrolment or course in state `status_now` (`action`)",
}


LANGUAGE_CATEGORIES = frozenset(
    {
        CourseCategory.INTEGRATION_COURSE,
        CourseCategory.GERMAN_SECOND_LANGUAGE,
        CourseCategory.JOB_GERMAN,
        CourseCategory.LITERACY,
    }
)


class CourseStatus(StrEnum):
    SCHEDULED = "scheduled"
    CANCELLED = "cancelled"
    COMPLETED = "completed"


#: Which courses answer which kind of referral.
COURSES_FOR_SERVICE = {
    ServiceType.INTEGRATION_COURSE: {
        CourseCategory.INTEGRATION_COURSE,
        CourseCategory.GERMAN_SECOND_LANGUAGE,
    },
    ServiceType.COURSE_WITH_CHILDCARE: set(LANGUAGE_CATEGORIES) | {CourseCategory.PARENTS_AND_WOMEN},
    # A course provider taking a job-specific German referral (EU skilled workers) seats the person in a
    # Berufssprachkurs of its own.
    ServiceType.JOB_SPECIFIC_GERMAN: {CourseCategory.JOB_GERMAN},
}


# --- eligibility and overlaps ----------------------------------------------------------------

_LEVELS = list(GermanLevel)


@dataclass(frozen=True)
class Session:
    starts_at: datetime
    ends_at: datetime


@dataclass(frozen=True)
class CourseRules:
    category: CourseCategory
    target_level: GermanLevel | None
    women_only: bool
    min_age: int | None
    max_age: int | None
    sessions: tuple[Session, ...] = ()


@dataclass(frozen=True)
class Learner:
    """What the courses service knows of a person (pseudonymous, from registration's events)."""

    gender: Gender | None
    age_band: AgeBand | None
    german_level: GermanLevel | None


def eligibility_breaches(course: CourseRules, learner: Learner) -> list[CourseError]:
    """The rules this person breaks for this course; empty when they can take it."""
    breaches = []
    if course.women_only and learner.gender != Gender.FEMALE:
        breaches.append(CourseError("the course is for women only", "course-women-only"))
    if (
        course.target_level is not None
        and learner.german_level is not None
        and _LEVELS.index(learner.german_level) >= _LEVELS.index(course.target_level)
    ):
        breaches.append(
            CourseError(
                f"German level {learner.german_level} already reaches the course's {course.target_level}",
                "course-level-reached",
                level=learner.german_level.value,
                target=course.target_level.value,
            )
        )
    if (course.min_age is not None or course.max_age is not None) and learner.age_band is not None:
        low, high = AGE_BAND_YEARS[learner.age_band]
        if course.min_age is not None and high < course.min_age:
            breaches.append(
                CourseError(f"the course is from age {course.min_age}", "course-min-age", min_age=course.min_age)
            )
        if course.max_age is not None and low > course.max_age:
            breaches.append(
                CourseError(f"the course is up to age {course.max_age}", "course-max-age", max_age=course.max_age)
            )
    return breaches


def eligibility_problems(course: CourseRules, learner: Learner) -> list[str]:
    """Why this person cannot take this course, in English; empty when they can."""
    return [str(breach) for breach in eligibility_breaches(course, learner)]


def sessions_overlap(a: Iterable[Session], b: Iterable[Session]) -> bool:
    b = list(b)
    return any(x.starts_at < y.ends_at and y.starts_at < x.ends_at for x in a for y in b)


def check_sessions(sessions: Sequence[Session]) -> None:
    for session in sessions:
        if session.ends_at <= session.starts_at:
            raise CourseError("a session must end after it starts", "course-session-order")
    ordered = sorted(sessions, key=lambda s: s.starts_at)
    if any(ordered[i].ends_at > ordered[i + 1].starts_at for i in range(len(ordered) - 1)):
        raise CourseError("sessions of one course must not overlap", "course-sessions-overlap")


# --- enrolment lifecycle -----------------------------------------------------------------------


class EnrolmentStatus(StrEnum):
    ENROLLED = "enrolled"
    WAITLISTED = "waitlisted"
    OFFERED = "offered"  # a freed seat is held for this person until the offer expires
    OFFER_EXPIRED = "offer_expired"
    CANCELLED = "cancelled"
    COMPLETED = "completed"


ACTIVE = frozenset({EnrolmentStatus.ENROLLED, EnrolmentStatus.WAITLISTED, EnrolmentStatus.OFFERED})
HOLDS_SEAT = frozenset({EnrolmentStatus.ENROLLED, EnrolmentStatus.OFFERED})

_MOVES: dict[tuple[EnrolmentStatus, str], EnrolmentStatus] = {
    (EnrolmentStatus.WAITLISTED, "offer"): EnrolmentStatus.OFFERED,
    (EnrolmentStatus.OFFERED, "accept"): EnrolmentStatus.ENROLLED,
    (EnrolmentStatus.OFFERED, "expire"): EnrolmentStatus.OFFER_EXPIRED,
    (EnrolmentStatus.ENROLLED, "cancel"): EnrolmentStatus.CANCELLED,
    (EnrolmentStatus.WAITLISTED, "cancel"): EnrolmentStatus.CANCELLED,
    (EnrolmentStatus.OFFERED, "cancel"): EnrolmentStatus.CANCELLED,
    (EnrolmentStatus.ENROLLED, "complete"): EnrolmentStatus.COMPLETED,
}


@dataclass(frozen=True)
class EnrolmentMoved:
    """The fact an enrolment's step produces, which its event reports: ``action`` is the step ("request",
    "enrol", "waitlist", or one of the moves: "offer", "accept", "expire", "cancel", "complete")."""

    action: str
    status: EnrolmentStatus


def move(status: EnrolmentStatus, action: str) -> EnrolmentStatus:
    target = _MOVES.get((EnrolmentStatus(status), action))
    if target is None:
        raise InvalidTransition(f"a {status} enrolment cannot {action}", status_now=str(status), action=action)
    return target


def step(status: EnrolmentStatus, action: str) -> tuple[EnrolmentStatus, list[EnrolmentMoved]]:
    """The status after ``action`` and the fact that it happened (:func:`move` with its fact)."""
    target = move(status, action)
    return target, [EnrolmentMoved(action, target)]


def admit(seats_taken: int, capacity: int) -> EnrolmentStatus:
    """A new request takes a seat while there is one, else it waits in line."""
    return EnrolmentStatus.ENROLLED if seats_taken < capacity else EnrolmentStatus.WAITLISTED


def admission(seats_taken: int, capacity: int) -> tuple[EnrolmentStatus, list[EnrolmentMoved]]:
    """A new request's status (:func:`admit`) and the facts: it was requested, then enrolled or waitlisted."""
    status = admit(seats_taken, capacity)
    taken = "enrol" if status is EnrolmentStatus.ENROLLED else "waitlist"
    return status, [EnrolmentMoved("request", status), EnrolmentMoved(taken, status)]


def changeable(status: CourseStatus | str) -> None:
    """Only a scheduled course takes changes (its data, capacity or sessions)."""
    if status != CourseStatus.SCHEDULED.value:
        raise InvalidTransition(f"a {status} course cannot be changed", status_now=status, action="change")


#: What of a course may be emptied by a change; everything else only replaced.
REMOVABLE = frozenset({"description", "enrolment_closes_on", "district"})


def course_changes(changes: dict[str, Any], seats_held: int) -> dict[str, Any]:
    """A scheduled course's change, checked: the capacity not below the seats taken, nothing required removed."""
    if changes.get("capacity") is not None and changes["capacity"] < seats_held:
        raise CourseError(
            f"{seats_held} seats are taken; the capacity cannot go below that",
            "course-capacity-taken",
            taken=seats_held,
        )
    for key, value in changes.items():
        if value is None and key not in REMOVABLE:
            raise CourseError(f"{key} cannot be removed", "course-field-required", field=key)
    return changes


# --- the waiting list ----------------------------------------------------------------------------


class PriorityCriterion(StrEnum):
    INTEGRATION_COURSE_OBLIGATION = "integration_course_obligation"  # Verpflichtung nach § 44a AufenthG
    WOMAN_NEEDING_CHILDCARE = "woman_needing_childcare"
    REFERRED = "referred"  # came through a referral by an integration navigator


DEFAULT_PRIORITIES = (PriorityCriterion.INTEGRATION_COURSE_OBLIGATION, PriorityCriterion.WOMAN_NEEDING_CHILDCARE)


@dataclass(frozen=True)
class WaitingEntry:
    enrolment_id: str
    requested_at: datetime
    flags: frozenset[PriorityCriterion]


def waiting_order(
    entries: Iterable[WaitingEntry], priorities: Sequence[PriorityCriterion] = DEFAULT_PRIORITIES
) -> list[WaitingEntry]:
    """The documented fair order: priority criteria in turn, then request time, then id."""
    return sorted(
        entries,
        key=lambda e: (*(0 if p in e.flags else 1 for p in priorities), e.requested_at, e.enrolment_id),
    )


def offer_expires_at(offered_at: datetime, hours: float) -> datetime:
    return offered_at + timedelta(hours=hours)


# --- completion and the education pass ----------------------------------------------------------


def level_reached(result: CompletionResult, target: GermanLevel | None, certificate: str | None) -> GermanLevel | None:
    """The German level a completion shows: the level a passed certificate names, or the course's target."""
    if result is not CompletionResult.PASSED:
        return None
    for level in reversed(_LEVELS[1:]):
        if certificate and level.value in certificate.upper().split():
            return level
    return target


def canonical_json(document: dict[str, Any]) -> bytes:
    """Sorted keys, no insignificant white space, UTF-8: the bytes that are signed (JCS-like)."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def education_pass(
    *,
    pass_id: str,
    issuer: str,
    person_id: str,
    holder_name: str | None,
    entries: list[dict[str, Any]],
    issued_at: datetime,
    status: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The unsigned credential in the W3C Verifiable Credentials data-model shape; ``status`` is its entry in the
    issuer's status list (:func:`status_entry`), so that a verifier can learn of a revocation."""
    subject: dict[str, Any] = {"id": f"urn:uuid:{person_id}", "type": "Bildungspass", "entries": entries}
    if holder_name:
        subject["name"] = holder_name
    credential: dict[str, Any] = {
        "@context": ["https://www.w3.org/ns/credentials/v2"],
        "id": f"urn:uuid:{pass_id}",
        "type": ["VerifiableCredential", "EducationPass"],
        "issuer": issuer,
        "validFrom": _timestamp(issued_at),
        "credentialSubject": subject,
    }
    if status is not None:
        credential["credentialStatus"] = status
    return credential


def _timestamp(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def pass_id_of(credential: dict[str, Any]) -> str | None:
    """The pass id in a credential's ``id`` (``urn:uuid:<pass id>``), if it has that form."""
    value = credential.get("id")
    if isinstance(value, str) and value.startswith("urn:uuid:") and 0 < len(value) - 9 <= 36:
        return value[9:]
    return None


_BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
#: An Ed25519 signature (64 bytes) is at most 88 base58 digits after the 'z'. Decoding is quadratic in the
#: length, and anyone may ask for a verification: a longer value is refused before it is decoded.
MAX_PROOF_VALUE_CHARS = 1 + 88


def _base58btc(raw: bytes) -> str:
    """Multibase base58btc ('z' prefix), as Data Integrity proofs carry their value."""
    number = int.from_bytes(raw, "big")
    digits = ""
    while number:
        number, rest = divmod(number, 58)
        digits = _BASE58[rest] + digits
    return "z" + "1" * (len(raw) - len(raw.lstrip(b"\0"))) + digits


def _unbase58btc(text: str) -> bytes:
    if not text.startswith("z") or any(c not in _BASE58 for c in text[1:]):
        raise ValueError("not a base58btc multibase value")
    body = text[1:]
    number = 0
    for char in body:
        number = number * 58 + _BASE58.index(char)
    zeros = len(body) - len(body.lstrip("1"))
    return b"\0" * zeros + (number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b"")


def _signing_input(document: dict[str, Any], proof_options: dict[str, Any]) -> bytes:
    """eddsa-jcs-2022: the hash of the canonical proof options, then the hash of the canonical document,
    so that neither the content nor the proof's own fields (created, key, purpose) can change unnoticed."""
    return hashlib.sha256(canonical_json(proof_options)).digest() + hashlib.sha256(canonical_json(document)).digest()


def sign(
    credential: dict[str, Any], key: Ed25519PrivateKey, verification_method: str, created: datetime
) -> dict[str, Any]:
    """Attach an Ed25519 Data Integrity proof (eddsa-jcs-2022) to the credential."""
    document = {k: v for k, v in credential.items() if k != "proof"}
    options = {
        "type": "DataIntegrityProof",
        "cryptosuite": "eddsa-jcs-2022",
        "verificationMethod": verification_method,
        "proofPurpose": "assertionMethod",
        "created": created.isoformat().replace("+00:00", "Z"),
        "@context": document.get("@context"),
    }
    signature = key.sign(_signing_input(document, options))
    proof = {k: v for k, v in options.items() if k != "@context"} | {"proofValue": _base58btc(signature)}
    return document | {"proof": proof}


def verify(credential: dict[str, Any], public_key: Ed25519PublicKey) -> bool:
    """True only when the proof was made by this key over exactly this credential and these proof options."""
    proof = credential.get("proof")
    if not isinstance(proof, dict) or not isinstance(proof.get("proofValue"), str):
        return False
    if len(proof["proofValue"]) > MAX_PROOF_VALUE_CHARS:
        return False
    document = {k: v for k, v in credential.items() if k != "proof"}
    options = {k: v for k, v in proof.items() if k != "proofValue"} | {"@context": document.get("@context")}
    try:
        signature = _unbase58btc(proof["proofValue"])
        public_key.verify(signature, _signing_input(document, options))
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def verify_with_any(credential: dict[str, Any], public_keys: Sequence[Ed25519PublicKey]) -> bool:
    """True when one of the issuer's keys made the proof: the current one, or one a rotation still honours."""
    return any(verify(credential, key) for key in public_keys)


def verification_code(credential: dict[str, Any]) -> str:
    """A short code printed on the pass page; it finds the issued pass for verification."""
    digest = hashlib.sha256(canonical_json(credential)).digest()
    code = base64.b32encode(digest).decode()[:12]
    return f"{code[:4]}-{code[4:8]}-{code[8:]}"


def public_jwk(public_key: Ed25519PublicKey, key_id: str) -> dict[str, str]:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return {"kty": "OKP", "crv": "Ed25519", "x": _b64url(raw), "kid": key_id, "use": "sig", "alg": "EdDSA"}


def key_from_jwk(jwk: dict[str, str]) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(_unb64url(jwk["x"]))


# --- revocation: the W3C Bitstring Status List ---------------------------------------------------
#
# Every pass names its place (``statusListIndex``) in the issuer's one revocation list, which anyone may fetch
# (``statusListCredential``): a credential of its own, signed with the pass key, whose ``encodedList`` is the
# GZIP-compressed bitstring, base64url with the multibase prefix "u". Bit ``i`` (counted from the most
# significant bit of the first byte) is 1 when the pass at index ``i`` is revoked. Places are drawn at random
# from a list of at least 16 KiB (the specification's minimum), so that neither the place nor the list's
# length tells how many passes were issued before, or whose a place is.

#: 16 KiB of bits.
STATUS_LIST_MIN_BITS = 131_072
#: A verifier decodes no more than this (a small GZIP body could otherwise unpack to gigabytes).
STATUS_LIST_MAX_BYTES = 16 * 1024 * 1024


def status_index_range(places_taken: int) -> int:
    """How many places a new pass's is drawn from: the minimum list, doubled until at most half is taken, so that
    a random draw rarely meets a taken place."""
    size = STATUS_LIST_MIN_BITS
    while 2 * (places_taken + 1) > size:
        size *= 2
    return size


def status_list_length(highest_index: int | None) -> int:
    """The list's length in bits: the minimum, or the multiple of it that holds the highest place given."""
    if highest_index is None:
        return STATUS_LIST_MIN_BITS
    return STATUS_LIST_MIN_BITS * (highest_index // STATUS_LIST_MIN_BITS + 1)


def status_entry(list_url: str, index: int) -> dict[str, str]:
    """A credential's ``credentialStatus``: its place in the revocation list at ``list_url``."""
    return {
        "id": f"{list_url}#{index}",
        "type": "BitstringStatusListEntry",
        "statusPurpose": "revocation",
        "statusListIndex": str(index),
        "statusListCredential": list_url,
    }


def encode_status_list(revoked: Iterable[int], length_bits: int) -> str:
    bits = bytearray(length_bits // 8)
    for index in revoked:
        if not 0 <= index < length_bits:
            raise ValueError(f"status list place {index} is outside a list of {length_bits} bits")
        bits[index // 8] |= 0x80 >> (index % 8)
    return "u" + _b64url(gzip.compress(bytes(bits), mtime=0))


def decode_status_list(encoded: str) -> bytes:
    """The bitstring of an ``encodedList``; ValueError for anything else (or more than STATUS_LIST_MAX_BYTES)."""
    if not encoded.startswith("u"):
        raise ValueError("not a base64url multibase value")
    text = encoded[1:]
    try:
        compressed = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
        inflate = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)  # GZIP framing
        bits = inflate.decompress(compressed, STATUS_LIST_MAX_BYTES + 1)
    except (zlib.error, ValueError) as exc:
        raise ValueError("not a GZIP-compressed bitstring") from exc
    if len(bits) > STATUS_LIST_MAX_BYTES or inflate.unconsumed_tail:
        raise ValueError("the status list is longer than a verifier reads")
    if not inflate.eof or not bits:
        raise ValueError("not a complete GZIP-compressed bitstring")
    return bits


def status_list_credential(
    *, list_url: str, issuer: str, revoked: Iterable[int], length_bits: int, valid_from: datetime
) -> dict[str, Any]:
    """The unsigned revocation list (a ``BitstringStatusListCredential``); sign it with :func:`sign`."""
    return {
        "@context": ["https://www.w3.org/ns/credentials/v2"],
        "id": list_url,
        "type": ["VerifiableCredential", "BitstringStatusListCredential"],
        "issuer": issuer,
        "validFrom": _timestamp(valid_from),
        "credentialSubject": {
            "id": f"{list_url}#list",
            "type": "BitstringStatusList",
            "statusPurpose": "revocation",
            "encodedList": encode_status_list(revoked, length_bits),
        },
    }


class StatusUnknown(ValueError):
    """The status list cannot answer for this credential (not the list it names, not the issuer's, unreadable)."""


def revoked_in(credential: dict[str, Any], status_list: dict[str, Any], public_key: Ed25519PublicKey) -> bool | None:
    """What an offline verifier asks: is this credential revoked by this status list, signed with the issuer's key?

    None when the credential names no place in a revocation list (a pass issued before there was one); raises
    :class:`StatusUnknown` when this list cannot tell (another list, another issuer, a bad signature, a place
    outside it). Check the credential's own proof with :func:`verify` first.
    """
    entry = credential.get("credentialStatus")
    if entry is None:
        return None
    if not isinstance(entry, dict) or entry.get("type") != "BitstringStatusListEntry":
        raise StatusUnknown("the credential's status entry is not a Bitstring Status List entry")
    if entry.get("statusPurpose") != "revocation" or entry.get("statusListCredential") != status_list.get("id"):
        raise StatusUnknown("this is not the revocation list the credential names")
    if status_list.get("issuer") != credential.get("issuer") or not verify(status_list, public_key):
        raise StatusUnknown("the status list is not signed by the credential's issuer")
    subject = status_list.get("credentialSubject")
    index = entry.get("statusListIndex")
    if not isinstance(subject, dict) or subject.get("statusPurpose") != "revocation":
        raise StatusUnknown("the status list is not a revocation list")
    if not isinstance(index, str) or not index.isdigit() or len(index) > 12:
        raise StatusUnknown("the credential's place in the list is not a number")
    try:
        bits = decode_status_list(str(subject.get("encodedList", "")))
    except ValueError as exc:
        raise StatusUnknown(str(exc)) from exc
    place = int(index)
    if place >= len(bits) * 8:
        raise StatusUnknown("the credential's place lies outside the list")
    return bool(bits[place // 8] & (0x80 >> (place % 8)))


# --- who may act on what ---------------------------------------------------------------------------

ADMIN, COURSE_ADMIN, CASEWORKER, REGISTRAR = "admin", "course_admin", "caseworker", "registrar"


@dataclass(frozen=True)
class Caller:
    """The caller as the identity the gateway forwards says (``X-Role``, ``X-Partner-Id``, ``X-Team``,
    ``X-Actor``, rewritten by the service's identity middleware from the signed token).

    ``roles`` None: no identity was forwarded at all, which only development and tests allow (production
    refuses such a call before it gets here); like an admin, such a caller is not limited to objects.
    """

    roles: frozenset[str] | None
    #: A course admin's provider: the partner organisation their sign-in names.
    provider_id: str | None = None
    team: str | None = None
    #: A caseworker's user subject, for one without a team (the cases assigned to them).
    caseworker_id: str | None = None

    @property
    def unrestricted(self) -> bool:
        return self.roles is None or ADMIN in self.roles

    def has(self, *roles: str) -> bool:
        return self.roles is None or bool(self.roles & {ADMIN, *roles})

    def manages(self, provider_id: str) -> bool:
        """Whether the caller may change this provider's courses and work their enrolments."""
        if self.unrestricted:
            return True
        return self.roles is not None and COURSE_ADMIN in self.roles and self.provider_id == provider_id


def caller_from(roles: str | None, partner_id: str | None, team: str | None, actor: str | None) -> Caller:
    if roles is None:
        return Caller(roles=None)
    granted = frozenset(role.strip() for role in roles.split(",") if role.strip())
    subject = actor.removeprefix("user:") if actor and actor.startswith("user:") else None
    return Caller(
        roles=granted,
        provider_id=(partner_id or None) if COURSE_ADMIN in granted else None,
        team=team or None,
        caseworker_id=subject or None,
    )


def completed_on_or_before(day: date, today: date) -> None:
    if day > today:
        raise CourseError("a completion date cannot lie in the future", "course-completion-in-future")
