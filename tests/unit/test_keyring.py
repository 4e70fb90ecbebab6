"""Key rings for signing secrets: link tokens naming their key, rotation that keeps what was
already signed verifying until its key expires, and refusals for forged, expired or removed keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from midstage.logic import keyring, links
from midstage.logic.keyring import KeyRing, KeyRingError, SigningKey
from midstage.logic.links import BadToken, click_payload, open_payload, sign, unsubscribe_payload, verify

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
OLD_SECRET = b"\x01" * 32  # the single `links` secret of a stack from before key rings
UNSUBSCRIBE = unsubscribe_payload("msg_1", "p_1", "ann@example.com", "email")


def legacy_ring() -> KeyRing:
    """The ring read from a stored `{"value": <hex>}`, as every stack from before rings has."""
    return keyring.from_document("links", {"value": OLD_SECRET.hex()})


def secret(n: int) -> bytes:
    return bytes([n]) * 32


# ------------------------------------------------------------------------------- signing
def test_given_a_ring_when_signing_then_the_token_names_the_current_key_and_verifies() -> None:
    ring = legacy_ring().rotate(secret(2), T0, timedelta(days=30))

    token = sign(UNSUBSCRIBE, ring.current)

    assert ring.current.id == "k1"
    assert token.endswith(".k1")
    assert verify(token, ring, now=T0) == UNSUBSCRIBE


def test_given_an_unsubscribe_link_from_before_rings_when_the_secret_is_rotated_then_it_still_works() -> None:
    # Given a link in mail already sent: signed with the single secret, in the old format
    old_link = sign(UNSUBSCRIBE, OLD_SECRET)
    assert old_link.count(".") == 1

    # When the secret is rotated (the old key kept for 400 days)
    rotated = legacy_ring().rotate(secret(2), T0, timedelta(days=400))

    # Then the old link still verifies, a year on
    assert verify(old_link, rotated, kind="u", now=T0 + timedelta(days=365)) == UNSUBSCRIBE
    # and new links are signed with the new key only
    assert verify(sign(UNSUBSCRIBE, rotated.current), rotated, now=T0)["a"] == "ann@example.com"
    with pytest.raises(BadToken):
        verify(sign(UNSUBSCRIBE, rotated.current), OLD_SECRET)


def test_given_a_retired_key_when_its_expiry_passes_then_what_it_signed_is_refused() -> None:
    ring = keyring.new_ring("links", secret(1), T0)
    signed_by_k1 = sign(open_payload("msg_1"), ring.current)
    rotated = ring.rotate(secret(2), T0 + timedelta(days=1), timedelta(days=10))
    expiry = T0 + timedelta(days=11)

    assert verify(signed_by_k1, rotated, now=expiry - timedelta(milliseconds=1))["m"] == "msg_1"
    for later in (expiry, expiry + timedelta(days=1)):
        with pytest.raises(BadToken) as refused:
            verify(signed_by_k1, rotated, now=later)
        assert refused.value.reason == "unknown or expired key"


def test_given_a_legacy_token_when_its_key_has_expired_then_it_is_refused() -> None:
    old_link = sign(UNSUBSCRIBE, OLD_SECRET)
    rotated = legacy_ring().rotate(secret(2), T0, timedelta(days=1))

    with pytest.raises(BadToken):
        verify(old_link, rotated, now=T0 + timedelta(days=2))


def test_given_a_leaked_secret_rotated_with_no_grace_when_its_tokens_come_back_then_they_are_refused() -> None:
    ring = keyring.new_ring("links", secret(1), T0)
    leaked = sign(click_payload("msg_1", "https://shop.example/"), ring.current)

    rotated = ring.rotate(secret(2), T0 + timedelta(hours=1), timedelta(0))

    with pytest.raises(BadToken):
        verify(leaked, rotated, now=T0 + timedelta(hours=1))


def test_given_a_key_removed_from_the_ring_when_its_tokens_come_back_then_they_are_refused() -> None:
    ring = keyring.new_ring("links", secret(1), T0)
    by_k1 = sign(open_payload("msg_1"), ring.current)
    legacy_by_k1 = sign(open_payload("msg_1"), secret(1))
    rotated = ring.rotate(secret(2), T0, None)  # kept until removed
    assert verify(by_k1, rotated, now=T0 + timedelta(days=3000))["m"] == "msg_1"

    pruned = rotated.remove("k1")

    for token in (by_k1, legacy_by_k1):
        with pytest.raises(BadToken):
            verify(token, pruned, now=T0)
    assert [key.id for key in pruned.keys] == ["k2"]


@pytest.mark.parametrize(
    "key_id",
    ["k9", "k2x", "K1", "k", "x1", "k-1", "k1234567890", "", "k1.k1", "é", "k\x001"],
)
def test_given_a_forged_or_malformed_key_id_when_verifying_then_it_is_refused_as_a_bad_token(key_id: str) -> None:
    ring = keyring.new_ring("links", secret(1), T0)
    body, mac, _ = sign(open_payload("msg_1"), ring.current).split(".")

    with pytest.raises(BadToken):
        verify(f"{body}.{mac}.{key_id}", ring, now=T0)


def test_given_a_token_relabelled_with_another_keys_id_when_verifying_then_it_is_refused() -> None:
    # Both keys are in the ring; the MAC covers the key id, so the label cannot be swapped.
    ring = keyring.new_ring("links", secret(1), T0).rotate(secret(1), T0, None)
    body, mac, key_id = sign(open_payload("msg_1"), ring.current).split(".")
    assert key_id == "k2"

    with pytest.raises(BadToken):
        verify(f"{body}.{mac}.k1", ring, now=T0)


def test_given_a_new_format_token_when_checked_with_bare_bytes_then_it_is_refused() -> None:
    ring = keyring.new_ring("links", secret(1), T0)
    with pytest.raises(BadToken):
        verify(sign(open_payload("msg_1"), ring.current), secret(1))


def test_given_a_ring_when_verifying_without_the_time_then_it_is_a_programming_error() -> None:
    ring = keyring.new_ring("links", secret(1), T0)
    with pytest.raises(TypeError):
        verify(sign(open_payload("msg_1"), ring.current), ring)


def test_given_a_token_naming_a_key_rotated_in_elsewhere_when_checked_then_it_is_worth_a_fresh_read() -> None:
    stale = keyring.new_ring("links", secret(1), T0)
    fresh = stale.rotate(secret(2), T0, None)
    newer_token = sign(open_payload("msg_1"), fresh.current)

    assert links.names_unknown_key(newer_token, stale, T0)
    assert not links.names_unknown_key(newer_token, fresh, T0)
    assert not links.names_unknown_key(sign(open_payload("msg_1"), secret(1)), stale, T0)
    assert not links.names_unknown_key("a.b.k99999999999", stale, T0)


# ------------------------------------------------------------------------------- the ring itself
def test_given_rotations_when_done_then_ids_count_up_and_only_the_newest_key_signs() -> None:
    ring = legacy_ring()
    for n in range(2, 6):
        ring = ring.rotate(secret(n), T0 + timedelta(days=n), None)

    assert [key.id for key in ring.keys] == ["k0", "k1", "k2", "k3", "k4"]
    assert ring.current.secret == secret(5)
    assert [key.retired_at is None for key in ring.keys] == [False, False, False, False, True]


def test_given_keys_past_their_expiry_when_rotating_again_then_they_are_dropped() -> None:
    ring = legacy_ring().rotate(secret(2), T0, timedelta(days=1))
    ring = ring.rotate(secret(3), T0 + timedelta(days=5), timedelta(days=1))

    assert [key.id for key in ring.keys] == ["k1", "k2"]


def test_given_the_current_key_or_an_unknown_one_when_removing_then_it_is_refused() -> None:
    ring = keyring.new_ring("links", secret(1), T0)
    with pytest.raises(KeyRingError) as current:
        ring.remove("k1")
    with pytest.raises(KeyRingError):
        ring.remove("k7")
    assert current.value.code == "key_ring_conflict"
    assert current.value.status == 409


def test_given_a_full_ring_when_rotating_then_it_is_refused_until_keys_are_removed() -> None:
    ring = keyring.new_ring("links", secret(1), T0)
    for n in range(keyring.MAX_KEYS - 1):
        ring = ring.rotate(secret(n + 2), T0, None)
    with pytest.raises(KeyRingError):
        ring.rotate(secret(99), T0, None)
    assert len(ring.remove("k1").rotate(secret(99), T0, None).keys) == keyring.MAX_KEYS


@pytest.mark.parametrize(
    "keys",
    [
        (),
        (SigningKey("k1", b"short", T0),),
        (SigningKey("x1", secret(1), T0),),
        (SigningKey("k1", secret(1), T0), SigningKey("k1", secret(2), T0)),
        (SigningKey("k1", secret(1), T0, retired_at=T0),),
        (SigningKey("k1", secret(1), T0), SigningKey("k2", secret(2), T0)),
    ],
)
def test_given_an_inconsistent_ring_when_built_then_it_is_refused(keys: tuple[SigningKey, ...]) -> None:
    with pytest.raises(KeyRingError):
        KeyRing("links", keys)


def test_given_a_ring_when_stored_and_read_back_then_it_is_the_same_ring() -> None:
    ring = legacy_ring().rotate(secret(2), T0, timedelta(days=3)).rotate(secret(3), T0, None)

    doc = keyring.to_document(ring)

    assert doc["value"] == secret(3).hex()  # what a release older than rings reads
    assert keyring.from_document("links", doc) == ring
    summary = ring.summary(T0 + timedelta(days=4))
    assert summary["currentKeyId"] == "k2"
    assert [k["state"] for k in summary["keys"]] == ["expired", "retired", "current"]
    assert "value" not in str(summary) and secret(3).hex() not in str(summary)


# ------------------------------------------------------------------------------- properties
_moments = st.integers(min_value=0, max_value=3 * 365 * 24).map(lambda h: T0 + timedelta(hours=h))


@settings(max_examples=60, deadline=None)
@given(
    rotations=st.lists(
        st.tuples(st.integers(min_value=1, max_value=2000), st.one_of(st.none(), st.integers(0, 2000))),
        min_size=1,
        max_size=8,
    ),
    checked_at=_moments,
)
def test_property_a_token_verifies_exactly_while_its_key_is_in_the_ring_and_unexpired(
    rotations: list[tuple[int, int | None]], checked_at: datetime
) -> None:
    # Given tokens signed by each successive current key, with rotations hours apart and any grace
    ring = keyring.new_ring("links", secret(1), T0)
    tokens = [(ring.current.id, sign(open_payload("msg_k1"), ring.current))]
    moment = T0
    for n, (after_hours, keep_hours) in enumerate(rotations):
        moment += timedelta(hours=after_hours)
        keep = None if keep_hours is None else timedelta(hours=keep_hours)
        ring = ring.rotate(secret(n + 2), moment, keep)
        tokens.append((ring.current.id, sign(open_payload(f"msg_{ring.current.id}"), ring.current)))

    # Then each verifies if and only if its key is still in the ring and not past its expiry
    for key_id, token in tokens:
        key = next((k for k in ring.keys if k.id == key_id), None)
        should_verify = key is not None and (key.expires_at is None or checked_at < key.expires_at)
        try:
            verify(token, ring, now=checked_at)
            verified = True
        except BadToken:
            verified = False
        assert verified == should_verify, (key_id, key, checked_at)


@settings(max_examples=200, deadline=None)
@given(tail=st.text(min_size=0, max_size=14))
def test_property_any_key_id_suffix_but_the_signing_one_is_refused(tail: str) -> None:
    ring = keyring.new_ring("links", secret(1), T0)
    body, mac, key_id = sign(open_payload("msg_1"), ring.current).split(".")
    if tail == key_id:
        return
    with pytest.raises(BadToken):
        verify(f"{body}.{mac}.{tail}", ring, now=T0)
