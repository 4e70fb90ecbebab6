"""Admin API: keys and roles, masking, profile lookup by any identifier, merge history."""

from __future__ import annotations

import json
import uuid

from tests.e2e.conftest import Platform


def test_admin_routes_need_a_valid_key(platform: Platform) -> None:
    assert platform.request("GET", "/v1/sources").status == 401
    assert platform.admin("GET", "/v1/sources", key="msk_wrong").status == 401


def test_roles_gate_routes_and_mask_contact_data(platform: Platform) -> None:
    run = uuid.uuid4().hex[:8]
    viewer = platform.admin("POST", "/v1/api-keys", {"name": "v", "role": "viewer"}).body["secret"]
    operator = platform.admin("POST", "/v1/api-keys", {"name": "o", "role": "data_operator"}).body["secret"]
    assert platform.admin("GET", "/v1/api-keys", key=viewer).status == 403
    assert platform.admin("POST", "/v1/sources", {"name": "x"}, key=operator).status == 403

    user = f"mask-{run}"
    platform.track(
        "/v1/identify", {"userId": user, "traits": {"email": f"ann.{run}@example.com", "phone": "+33612345678"}}
    )
    platform.settle()
    seen_by_viewer = platform.admin("GET", f"/v1/profiles/user_id:{user}", key=viewer).body
    assert seen_by_viewer["identities"]["email"] == ["a***@example.com"]
    assert seen_by_viewer["traits"]["phone"] == "+3******5678"
    seen_by_operator = platform.admin("GET", f"/v1/profiles/email:ANN.{run}@example.com", key=operator).body
    assert seen_by_operator["identities"]["email"] == [f"ann.{run}@example.com"]
    assert seen_by_operator["traits"]["phone"] == "+33612345678"


def test_revoked_keys_stop_working(platform: Platform) -> None:
    created = platform.admin("POST", "/v1/api-keys", {"name": "temp", "role": "marketer"}).body
    assert platform.admin("GET", "/v1/sources", key=created["secret"]).status == 200
    assert platform.admin("DELETE", f"/v1/api-keys/{created['id']}").status == 200
    listed = {k["id"]: k for k in platform.admin("GET", "/v1/api-keys").body["apiKeys"]}
    assert listed[created["id"]]["revoked"] is True
    assert "digest" not in listed[created["id"]]


def test_invalid_admin_bodies_get_precise_errors(platform: Platform) -> None:
    answer = platform.admin("POST", "/v1/sources", {"name": "", "rate_limit": -1, "extra": 1})
    assert answer.status == 400
    assert answer.body["code"] == "invalid_body"
    assert "name" in answer.body["message"]
    assert platform.admin("POST", "/v1/api-keys", {"name": "x", "role": "god"}).status == 400
    assert platform.admin("GET", "/v1/sources/src_missing").status == 404
    assert platform.admin("GET", "/v1/profiles/email:nobody@example.com").status == 404
    assert platform.admin("GET", f"/v1/sources/{platform.source_id}/quarantine?limit=0").status == 400


def test_merge_history_records_the_trigger_and_refused_merges_say_why(platform: Platform) -> None:
    run = uuid.uuid4().hex[:8]
    anon = f"anon-{run}"
    platform.track("/v1/track", {"anonymousId": anon, "event": "Browsed"})
    platform.settle()
    platform.track("/v1/identify", {"userId": f"first-{run}", "traits": {"plan": "a"}})
    platform.settle()
    merge_trigger = {"userId": f"first-{run}", "anonymousId": anon, "messageId": f"link-{run}"}
    platform.track("/v1/identify", merge_trigger)
    platform.settle()
    profile = platform.profile(f"anonymous_id:{anon}")
    merges = platform.admin("GET", f"/v1/profiles/{profile['id']}/merges").body["merges"]
    merged = [m for m in merges if m["kind"] == "merged"]
    assert merged and merged[0]["trigger_message_id"] == f"link-{run}"
    assert f"anonymous_id:{anon}" in merged[0]["identifiers"]

    # A second userId on the same browser would break the one-userId limit: refused and recorded.
    platform.track("/v1/identify", {"userId": f"second-{run}", "anonymousId": anon})
    platform.settle()
    second = platform.profile(f"user_id:second-{run}")
    assert second["id"] != profile["id"]
    refused = [
        m for m in platform.admin("GET", f"/v1/profiles/{second['id']}/merges").body["merges"] if m["kind"] == "refused"
    ]
    assert refused and "user_id limit 1" in refused[0]["reason"]


def test_bad_cursor_and_null_updates_are_400_not_500(platform: Platform) -> None:
    bad = platform.admin("GET", f"/v1/sources/{platform.source_id}/quarantine?cursor=not-a-cursor")
    assert (bad.status, bad.body["code"]) == (400, "invalid_cursor")
    created = platform.admin("POST", "/v1/sources", {"name": "nulls"}).body
    for body in ({"name": None}, {"enabled": None}, {"allowed_origins": None}):
        answer = platform.admin("PATCH", f"/v1/sources/{created['id']}", body)
        assert (answer.status, answer.body["code"]) == (400, "invalid_body"), body


def test_profiles_can_be_found_by_external_id(platform: Platform) -> None:
    run = uuid.uuid4().hex[:8]
    platform.track(
        "/v1/identify",
        {
            "userId": f"ext-{run}",
            "context": {
                "externalIds": [{"id": f"C-{run}", "type": "crm_id", "collection": "users", "encoding": "none"}]
            },
        },
    )
    platform.settle()
    assert platform.profile(f"x:crm_id:C-{run}")["identities"]["user_id"] == [f"ext-{run}"]


def test_consent_keeps_the_newest_choice_from_any_road_and_is_read_with_its_provenance(platform: Platform) -> None:
    run = uuid.uuid4().hex[:8]
    user, segment = f"pp-{run}", f"pinpoint_{run}"
    # Given a person who opted out of email in Pinpoint (effective 2025-06-10), imported over HTTP
    assert (
        platform.admin("POST", "/v1/segments", {"id": segment, "name": "From Pinpoint", "kind": "static"}).status == 201
    )
    endpoint = {
        "Id": f"ep-{run}",
        "ChannelType": "EMAIL",
        "Address": f"pp.{run}@example.com",
        "EndpointStatus": "ACTIVE",
        "OptOut": "ALL",
        "EffectiveDate": "2025-06-10T08:00:00.000Z",
        "User": {"UserId": user},
    }
    imported = platform.admin(
        "POST", f"/v1/segments/{segment}/import", {"format": "pinpoint-json", "data": json.dumps(endpoint)}
    )
    assert imported.status == 202, imported.body
    platform.settle()
    # When older grants arrive afterwards by the admin API and from the app, and a blanket grant now
    older = {
        "channel": "email",
        "purpose": "marketing",
        "granted": True,
        "source": "crm",
        "timestamp": "2024-03-01T09:00:00Z",
    }
    assert platform.admin("PUT", f"/v1/profiles/user_id:{user}/consent", older).status == 202
    from_app = {"channel": "email", "purpose": "marketing", "granted": True, "source": "app-settings"}
    tracked = {"userId": user, "event": "Consent Updated", "properties": from_app, "timestamp": "2025-01-01T00:00:00Z"}
    assert platform.track("/v1/track", tracked).status == 200
    blanket = platform.admin(
        "PUT", f"/v1/profiles/user_id:{user}/consent", {"channel": "*", "purpose": "marketing", "granted": True}
    )
    assert blanket.status == 202
    platform.settle()
    # Then the imported opt-out stands for email, with its time and the import that brought it
    read = platform.admin("GET", f"/v1/profiles/user_id:{user}/consent")
    assert read.status == 200, read.body
    records = {c["channel"]: (c["state"], c["at"], c["source"]) for c in read.body["consents"]}
    assert records == {
        "email": ("refused", "2025-06-10T08:00:00.000Z", f"import:{imported.body['import_id']}"),
        "*": ("granted", blanket.body["timestamp"], "admin-api"),
    }
    decided = {e["channel"]: e["state"] for e in read.body["effective"] if e["purpose"] == "marketing"}
    assert decided == {"email": "refused", "sms": "granted", "push": "granted", "inbox": "granted"}

    # And a visitor's SMS refusal is read through the visitor's id once the visitor is merged into the person
    anon = f"visitor-{run}"
    stop = {"channel": "sms", "purpose": "marketing", "granted": False, "source": "sms_stop"}
    platform.track("/v1/track", {"anonymousId": anon, "event": "Consent Updated", "properties": stop})
    platform.settle()
    visitor_id = platform.profile(f"anonymous_id:{anon}")["id"]
    platform.track("/v1/identify", {"userId": user, "anonymousId": anon})
    platform.settle()
    survivor = platform.profile(f"user_id:{user}")["id"]
    merged_away = visitor_id if visitor_id != survivor else platform.profile(survivor)["mergedFrom"][0]
    through_loser = platform.admin("GET", f"/v1/profiles/{merged_away}/consent")
    assert through_loser.status == 200, through_loser.body
    assert through_loser.body["profileId"] == survivor
    assert {c["channel"]: (c["state"], c["source"]) for c in through_loser.body["consents"]} == {
        "email": ("refused", f"import:{imported.body['import_id']}"),
        "sms": ("refused", "sms_stop"),
        "*": ("granted", "admin-api"),
    }
    viewer = platform.admin("POST", "/v1/api-keys", {"name": f"v-{run}", "role": "viewer"}).body["secret"]
    assert platform.admin("GET", f"/v1/profiles/user_id:{user}/consent", key=viewer).status == 403


def test_writes_and_reads_of_a_person_are_audited_and_the_chain_verifies(platform: Platform) -> None:
    # Given an operator's key (its creation is itself an audited write)
    run = uuid.uuid4().hex[:8]
    operator = platform.admin("POST", "/v1/api-keys", {"name": f"audit-{run}", "role": "data_operator"}).body
    address = f"audited.{run}@example.com"
    # When it suppresses an address and reads it back, through the gateway
    assert platform.admin("PUT", f"/v1/suppressions/email/{address}", {}, key=operator["secret"]).status == 200
    assert platform.admin("GET", f"/v1/suppressions/email/{address}", key=operator["secret"]).status == 200
    # Then the audit log holds both, newest first, under the operator's key id, with API
    # Gateway's request ids, and the address only as a digest
    listed = platform.admin("GET", f"/v1/audit?actor={operator['id']}").body["entries"]
    assert [(e["kind"], e["action"], e["status"]) for e in listed] == [
        ("read", "GET /v1/suppressions/{channel}/{address}", 200),
        ("write", "PUT /v1/suppressions/{channel}/{address}", 200),
    ]
    assert all(e["requestId"] and e["role"] == "data_operator" for e in listed)
    assert address not in json.dumps(listed)
    assert platform.admin("GET", f"/v1/audit?target={address}").body["entries"] == listed
    # And the chain verifies; an operator may not read the log
    verdict = platform.admin("GET", "/v1/audit/verify").body
    assert verdict["valid"] is True and verdict["firstBroken"] is None
    assert platform.admin("GET", "/v1/audit", key=operator["secret"]).status == 403
