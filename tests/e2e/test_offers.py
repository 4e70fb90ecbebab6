"""Offers end to end in the local cloud: a rule issues a unique code, the email carries it, an
order with that `coupon` marks it redeemed with its revenue, and the offer's stats say so."""

from __future__ import annotations

import re

from tests.e2e.test_rules_delivery import DAYTIME, Scenario, scenario, wait_for, zone_at_local_hour

__all__ = ["scenario"]  # the fixture, used by name


def test_a_rule_issues_a_code_the_email_carries_it_and_an_order_redeems_it(scenario: Scenario) -> None:
    # Given an offer with a pool of three codes, and a rule that issues one and emails it
    t, platform = scenario.tag, scenario.platform
    offer = f"vip-{t}"
    codes = [f"E2E{t.upper()}-{n}" for n in range(3)]
    assert (
        platform.admin("POST", "/v1/offers", {"id": offer, "name": "VIP", "kind": "percentage", "value": 20}).status
        == 201
    )
    uploaded = platform.request(
        "POST",
        f"/v1/offers/{offer}/codes",
        raw=("code\n" + "\n".join(codes) + "\n").encode(),
        headers={"authorization": f"Bearer {platform.admin_key}", "content-type": "text/csv"},
    )
    assert uploaded.status == 200 and uploaded.body["added"] == 3, uploaded.body
    scenario.template(f"thanks-{t}", "email", {"subject": "Your code", "text": "Use {{ vars.coupon }} next time"})
    scenario.rule(
        f"thanks-{t}",
        "Signed Up",
        [
            {"type": "issue_offer", "offer": offer},
            {"type": "send", "channels": ["email"], "template": f"thanks-{t}", "category": "transactional"},
        ],
    )
    scenario.identify(zone_at_local_hour(DAYTIME))

    # When the person signs up
    scenario.track("Signed Up")

    # Then the email carries the first code of the pool, and the code is issued to them
    [email] = wait_for(scenario.emails, "the email with the code")
    assert email.text is not None
    [code] = re.findall(rf"E2E{t.upper()}-\d", email.text)
    assert code == codes[0]
    issued = platform.admin("GET", f"/v1/offers/{offer}/codes?state=issued")
    assert [c["coupon"] for c in issued.body["codes"]] == [code]

    # When they order with it
    scenario.track("Order Completed", order_id=f"o-{t}", coupon=code, revenue=80, discount=16)

    # Then the code is redeemed with the order's revenue, and the stats say so
    def redeemed() -> dict[str, object] | None:
        stats = platform.admin("GET", f"/v1/offers/{offer}/stats").body
        return stats if stats["redeemed"] == 1 else None

    stats = wait_for(redeemed, "the redemption")
    assert stats["issued"] == 1 and stats["revenue"] == 80 and stats["discountCost"] == 16
    assert stats["redemptionRate"] == 1.0 and stats["remaining"] == 2
    assert stats["redemptions"]["redeemed"] == 1
    [used] = platform.admin("GET", f"/v1/offers/{offer}/codes?state=redeemed").body["codes"]
    assert used["coupon"] == code and used["revenue"] == 80 and used["outcome"] == "redeemed"


def test_codes_dropped_in_the_bucket_fill_the_offers_pool_once(scenario: Scenario) -> None:
    # Given a pooled offer with no codes, and a shop system's export of codes
    t, platform = scenario.tag, scenario.platform
    offer = f"drop-{t}"
    created = platform.admin("POST", "/v1/offers", {"id": offer, "name": "Drop", "kind": "percentage", "value": 10})
    assert created.status == 201, created.body
    codes = [f"DROP{t.upper()}-{n}" for n in range(4)]
    body = ("code\r\n" + "\r\n".join([*codes, "not a code!"])).encode()
    s3 = platform.cloud.client("s3")
    bucket = platform.cloud.outputs["ArchiveBucketName"]

    # When the export is dropped under the offer's folder (S3's notification reaches the import
    # function through EventBridge), and dropped again
    for attempt in range(2):
        s3.put_object(Bucket=bucket, Key=f"imports/offer-codes/{offer}/export-{attempt}.csv", Body=body)
        platform.settle()

    # Then the pool holds each code once, and the function said what it loaded and skipped
    listed = platform.admin("GET", f"/v1/offers/{offer}/codes")
    assert listed.status == 200, listed.body
    assert sorted(c["coupon"] for c in listed.body["codes"]) == sorted(codes)
    logs = platform.cloud.log_path("RunImportsFunction").read_text(encoding="utf-8").splitlines()
    loaded = [line for line in logs if "offer codes loaded" in line and f"offer-codes/{offer}/" in line]
    assert len(loaded) == 2
    assert '"added":4' in loaded[0].replace(" ", "") and '"added":0' in loaded[1].replace(" ", "")
    assert all('"problems_total":1' in line.replace(" ", "") for line in loaded)
