"""The signed handshake transcript: one DER SEQUENCE, built with pyasn1.

Both ends build the transcript from the values of phases 1 and 2 (nonces, both RSA keys,
the offered suites, the choice, the RSA-encrypted secret and both ephemeral X25519
shares); the server signs it and the client verifies it. DER is canonical, so the two ends
arrive at the same bytes from the same values. The SHA-256 of those bytes is the
**session id**: it names this one session, and rsa-oaep binds every chunk to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from hashlib import sha256

from pyasn1.codec.der import decoder as der_decoder
from pyasn1.codec.der import encoder as der_encoder
from pyasn1.error import PyAsn1Error
from pyasn1.type import char, namedtype, univ

PROTOCOL = "messenger/2"
VERSION = 2


class SuiteList(univ.SequenceOf):
    componentType = char.UTF8String()


class Transcript(univ.Sequence):
    """The ASN.1 shape of what the server signs (docs/PROTOCOL.md section 5)."""

    componentType = namedtype.NamedTypes(
        namedtype.NamedType("protocol", char.UTF8String()),
        namedtype.NamedType("serverNonce", univ.OctetString()),
        namedtype.NamedType("clientNonce", univ.OctetString()),
        namedtype.NamedType("clientKey", univ.OctetString()),
        namedtype.NamedType("serverKey", univ.OctetString()),
        namedtype.NamedType("offeredSuites", SuiteList()),
        namedtype.NamedType("suite", char.UTF8String()),
        namedtype.NamedType("encryptedSecret", univ.OctetString()),
        namedtype.NamedType("clientShare", univ.OctetString()),
        namedtype.NamedType("serverShare", univ.OctetString()),
    )


@dataclass(frozen=True)
class TranscriptFields:
    server_nonce: bytes
    client_nonce: bytes
    client_key_der: bytes
    server_key_der: bytes
    offered_suites: tuple[str, ...]
    suite: str
    encrypted_secret: bytes
    client_share: bytes
    server_share: bytes


def transcript(fields: TranscriptFields) -> bytes:
    """The canonical DER encoding of the handshake transcript."""
    record = Transcript()
    record["protocol"] = PROTOCOL
    record["serverNonce"] = fields.server_nonce
    record["clientNonce"] = fields.client_nonce
    record["clientKey"] = fields.client_key_der
    record["serverKey"] = fields.server_key_der
    suites = SuiteList()
    for position, suite in enumerate(fields.offered_suites):
        suites[position] = suite
    record["offeredSuites"] = suites
    record["suite"] = fields.suite
    record["encryptedSecret"] = fields.encrypted_secret
    record["clientShare"] = fields.client_share
    record["serverShare"] = fields.server_share
    return der_encoder.encode(record)


def session_id(der: bytes) -> bytes:
    """The session id: SHA-256 of the DER transcript (32 bytes)."""
    return sha256(der).digest()


def parse_transcript(der: bytes) -> TranscriptFields:
    """Parse a DER transcript back into its fields (for tools and tests)."""
    try:
        record, rest = der_decoder.decode(der, asn1Spec=Transcript())
    except PyAsn1Error as error:
        raise ValueError(f"not a transcript: {error}") from None
    if rest or str(record["protocol"]) != PROTOCOL:
        raise ValueError(f"not a {PROTOCOL} transcript")
    return TranscriptFields(
        server_nonce=bytes(record["serverNonce"]),
        client_nonce=bytes(record["clientNonce"]),
        client_key_der=bytes(record["clientKey"]),
        server_key_der=bytes(record["serverKey"]),
        offered_suites=tuple(str(s) for s in record["offeredSuites"]),
        suite=str(record["suite"]),
        encrypted_secret=bytes(record["encryptedSecret"]),
        client_share=bytes(record["clientShare"]),
        server_share=bytes(record["serverShare"]),
    )
