"""The cluster DNS responder's answers (``goq.devenv.node.dns_server``): A records, NXDOMAIN, malformed queries."""

import struct

import pytest

from goq.devenv.node import dns_server as dns


def query(name: str, qtype: int = dns.TYPE_A) -> bytes:
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.split("."))
    return struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + labels + b"\0" + struct.pack("!HH", qtype, 1)


def lookup(name: str) -> list[str] | None:
    return {
        "goq-billing.shop.svc.cluster.local": ["127.9.0.2", "127.9.0.3"],
        "goq-idle.shop.svc.cluster.local": [],
    }.get(name)


def test_dns_answers_a_services_ready_pods_as_a_records() -> None:
    response = dns.answer(query("goq-billing.shop.svc.cluster.local"), lookup)
    ident, flags, _, answers = struct.unpack("!HHHH", response[:8])
    assert ident == 0x1234
    assert flags & 0x8000  # a response
    assert flags & 0x000F == 0
    assert answers == 2
    assert response.endswith(
        bytes([127, 9, 0, 2]) + struct.pack("!HHHIH", 0xC00C, 1, 1, dns.TTL, 4) + bytes([127, 9, 0, 3])
    )


def test_dns_says_nxdomain_for_unknown_names_and_nothing_for_other_record_types() -> None:
    unknown = dns.answer(query("goq-shipping.shop.svc.cluster.local"), lookup)
    assert struct.unpack("!H", unknown[2:4])[0] & 0x000F == dns.RCODE_NXDOMAIN
    aaaa = dns.answer(query("goq-billing.shop.svc.cluster.local", qtype=28), lookup)
    assert struct.unpack("!HH", aaaa[2:4] + aaaa[6:8]) == (0x8500, 0)
    with pytest.raises(dns.DnsFormatError):
        dns.answer(b"\0\1", lookup)
