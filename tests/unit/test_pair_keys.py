"""Keys per ordered pair of namespaces: derived, distinct and stable; a namespace's ring signs only from or to it."""

import base64
import hashlib
import hmac
from pathlib import Path

import pytest

from goq import pair_keys
from goq.devenv.secret_volume import SecretVolume
from goq.errors import ConfigError
from goq.operator.keys import KeyData
from goq.operator.settings import OperatorSettings
from goq.signing import BAD_SIGNATURE, UNKNOWN_KEY, Keyring, NoKeyError, SignatureError

K1, K2 = b"1" * 32, b"2" * 32
SPACES = ("a", "b", "c")


def hkdf_expand(prk: bytes, info: bytes, length: int) -> bytes:
    """RFC 5869 section 2.3, written out: what ``derive`` must equal."""
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        out += block
        counter += 1
    return out[:length]


def ring_of(namespace: str, masters: dict[str, bytes] | None = None, active: str = "k1") -> Keyring:
    data = pair_keys.namespace_ring(masters or {"k1": K1}, active, namespace, SPACES)
    keys = {k: v for k, v in data.items() if k not in ("active", "namespace")}
    return Keyring(keys, data["active"].decode(), data["namespace"].decode())


def test_derived_keys_differ_per_ordered_pair_and_per_key_id_and_are_stable() -> None:
    keys = {
        (m, s, d): pair_keys.derive(master, s, d)
        for m, master in (("k1", K1), ("k2", K2))
        for s in SPACES
        for d in SPACES
    }
    assert len(set(keys.values())) == len(keys) == 18  # a->b differs from b->a, and k1's from k2's
    assert all(len(k) == 32 and k not in (K1, K2) for k in keys.values())
    assert pair_keys.derive(K1, "a", "b") == pair_keys.derive(K1, "a", "b")
    assert pair_keys.derive(K1, "a", "b") == hkdf_expand(K1, b"goq/v1/a/b", 32)
    # A known answer: a change of the derivation would strand every message signed before it.
    assert pair_keys.derive(K1, "shop", "billing").hex() == KNOWN_ANSWER


KNOWN_ANSWER = "a6d23301962d33af1a41d18aa1b9b63dce9338b1b4ee393c722b1deaa61bdcee"


def test_a_namespace_ring_holds_only_pairs_with_itself_on_one_side_and_no_master_key() -> None:
    data = pair_keys.namespace_ring({"k1": K1, "k2": K2}, "k2", "a", ["b", "c"])
    entries = {k: v for k, v in data.items() if k not in ("active", "namespace")}
    assert data["active"] == b"k2"
    assert data["namespace"] == b"a"
    pairs = {pair_keys.parse_entry(name) for name in entries}
    assert None not in pairs
    assert all("a" in p[:2] for p in pairs if p)
    assert ("b", "c", "k1") not in pairs
    assert ("c", "b", "k1") not in pairs
    assert len(entries) == 2 * 2 * 3 - 2  # per key: a->a once, a->b, a->c, b->a, c->a
    assert K1 not in entries.values()
    assert K2 not in entries.values()
    assert entries["b.a.k1"] == pair_keys.derive(K1, "b", "a")


def test_a_pair_signed_message_verifies_only_at_its_destination_namespace() -> None:
    a, c = ring_of("a"), ring_of("c")
    key_id, signature = a.sign(b"body", "c")
    assert key_id == "k1@a"
    c.verify(b"body", key_id, signature)
    c.check_source(key_id, "a")
    with pytest.raises(SignatureError) as refused:
        ring_of("b").verify(b"body", key_id, signature)  # b verifies a->b, not a->c
    assert refused.value.reason == BAD_SIGNATURE


def test_a_holder_of_one_namespace_keys_cannot_make_a_message_from_another_namespace() -> None:
    a, c = ring_of("a"), ring_of("c")
    # Claiming the key of b: a has no b->c key, and its a->c key does not verify as b->c.
    _, signature = a.sign(b"from b", "c")
    with pytest.raises(SignatureError) as refused:
        c.verify(b"from b", "k1@b", signature)
    assert refused.value.reason == BAD_SIGNATURE
    # Naming its own key honestly, for a message whose ``from`` is in b: the signature verifies, the source does not.
    key_id, signature = a.sign(b"from b", "c")
    c.verify(b"from b", key_id, signature)
    with pytest.raises(SignatureError, match=r"namespace 'a'.*claims to come from namespace 'b'") as refused:
        c.check_source(key_id, "b")
    assert refused.value.reason == BAD_SIGNATURE
    # And nothing in a's ring is a key between b and c.
    assert all("a" in (p := pair_keys.parse_entry(k) or ("", "", ""))[:2] for k in a.keys), p


def test_a_cluster_wide_signature_is_unknown_to_a_scoped_ring_and_signed_again_by_its_sender() -> None:
    legacy = Keyring({"k1": K1}, "k1")
    key_id, signature = legacy.sign(b"stored")
    scoped = ring_of("a")
    with pytest.raises(SignatureError, match="cluster-wide ring") as refused:
        scoped.verify(b"stored", key_id, signature)
    assert refused.value.reason == UNKNOWN_KEY  # retried, never poisoned at once
    assert scoped.needs_signing(key_id)
    assert scoped.needs_signing("")
    assert not scoped.needs_signing("k1@a")
    assert not scoped.needs_signing("k0@a")
    assert legacy.needs_signing("k1@a")
    assert not legacy.needs_signing("k1")
    assert not legacy.needs_signing("k0")


def test_a_scoped_ring_without_a_key_for_a_namespace_defers_the_signature() -> None:
    a = ring_of("a")
    with pytest.raises(NoKeyError, match="from namespace 'a' to 'z'"):
        a.sign(b"x", "z")
    assert a.try_sign(b"x", "z") == ("", b"")
    assert a.try_sign(b"x", "b")[0] == "k1@a"


def test_a_scoped_ring_is_read_from_its_mounted_secret(tmp_path: Path) -> None:
    data = pair_keys.namespace_ring({"k1": K1}, "k1", "a", ["b"])
    ring = Keyring.from_directory(SecretVolume(tmp_path / "keys", data).path)
    assert ring.namespace == "a"
    assert ring.ids == {"k1"}
    assert ring.peers == {"a", "b"}
    assert ring.sign(b"x", "b") == ring_of("a").sign(b"x", "b")
    assert set(ring.keys) == {"a.a.k1", "a.b.k1", "b.a.k1"}


def test_a_scoped_ring_with_a_key_of_two_other_namespaces_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"'b\.c\.k1'.*with 'a' on one side"):
        Keyring({"a.b.k1": K1, "b.c.k1": K2}, "k1", "a")
    with pytest.raises(ConfigError, match="active key 'k2'"):
        Keyring({"a.b.k1": K1}, "k2", "a")


def test_the_operator_makes_each_namespace_ring_from_the_master_by_scope() -> None:
    master = {"k1": base64.b64encode(K1).decode(), "active": base64.b64encode(b"k1").decode()}
    annotations = {"goq.io/key-schedule": "{}"}
    assert KeyData(master, annotations).for_namespace("a") == (master, annotations)  # cluster: a copy
    scoped = KeyData(master, annotations, "namespace", frozenset({"a", "b"}))
    data, _ = scoped.for_namespace("a")
    assert set(data) == {"active", "namespace", "a.a.k1", "a.b.k1", "b.a.k1"}
    assert base64.b64decode(data["b.a.k1"]) == pair_keys.derive(K1, "b", "a")
    assert master["k1"] not in data.values()
    # A namespace not (yet) listed gets its own pair at least.
    assert set(scoped.for_namespace("new")[0]) >= {"new.new.k1", "new.a.k1", "a.new.k1"}


def test_the_key_scope_setting_is_namespace_by_default_and_says_what_is_allowed() -> None:
    assert pair_keys.parse_scope("") == "namespace"
    assert pair_keys.parse_scope("Cluster") == "cluster"
    with pytest.raises(ConfigError, match=r"'namespace'.*or 'cluster'"):
        pair_keys.parse_scope("pairs")


def test_the_operator_refuses_an_unknown_key_scope_at_start() -> None:
    base = {"GOQ_OPERATOR_NAMESPACE": "goq-system", "GOQ_WEBHOOK_URL": "https://127.0.0.1:9443"}
    assert OperatorSettings.from_env(base).keys.scope == "namespace"
    assert OperatorSettings.from_env(base | {"GOQ_KEY_SCOPE": "cluster"}).keys.scope == "cluster"
    with pytest.raises(ConfigError, match="GOQ_KEY_SCOPE is 'per-pod'"):
        OperatorSettings.from_env(base | {"GOQ_KEY_SCOPE": "per-pod"})
