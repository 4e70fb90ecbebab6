"""Every DynamoDB key the platform writes, built in one place (item types: template.yaml)."""

from __future__ import annotations

import hashlib

# DataTable ------------------------------------------------------------------------------
PROFILE_SK = "PROFILE"
IDENTITY_SK = "ID"
MARKER_SK = "MSG"
RATE_SK = "RATE"


# The sparse index of live profiles (template.yaml, DataTable `LiveProfiles`, keys only): its key
# attribute is on a profile's item while it is live (not merged away), and on no other item.
LIVE_PROFILES_INDEX = "LiveProfiles"
LIVE_ATTRIBUTE = "live"
# Written once, when every live profile carries the attribute (adapters/profile_store.py).
PROFILE_INDEX_READY_KEY = {"pk": "META#profile-index", "sk": "READY"}


def profile_pk(profile_id: str) -> str:
    return f"P#{profile_id}"


def profile_key(profile_id: str) -> dict[str, str]:
    return {"pk": profile_pk(profile_id), "sk": PROFILE_SK}


def identity_key(id_type: str, value: str) -> dict[str, str]:
    return {"pk": f"ID#{id_type}#{value}", "sk": IDENTITY_SK}


def timeline_sk(max_ts: str, page_id: str) -> str:
    return f"T#{max_ts}#{page_id}"


TIMELINE_PREFIX = "T#"


def merge_sk(at: str, merge_id: str) -> str:
    return f"M#{at}#{merge_id}"


MERGE_PREFIX = "M#"


def marker_key(source_id: str, message_id: str) -> dict[str, str]:
    return {"pk": f"MSG#{source_id}#{message_id}", "sk": MARKER_SK}


def quarantine_pk(source_id: str) -> str:
    return f"Q#{source_id}"


def quarantine_sk(received_at: str, entry_id: str) -> str:
    return f"{received_at}#{entry_id}"


def rate_key(source_id: str, epoch_second: int) -> dict[str, str]:
    return {"pk": f"RATE#{source_id}#{epoch_second}", "sk": RATE_SK}


def failure_key(sqs_message_id: str) -> dict[str, str]:
    """Why a queue message last failed, kept for its dead letter (SQS keeps the message id)."""
    return {"pk": f"FAILURE#{sqs_message_id}", "sk": "FAILURE"}


# Messaging (DataTable) ------------------------------------------------------------------
MESSAGE_SK = "MESSAGE"
CAPS_SK = "CAPS"
SUPPRESSION_SK = "SUPPRESSION"
INBOX_PREFIX = "INBOX#"
MESSAGE_REF_PREFIX = "MREF#"
TIMER_SHARDS = 4


def message_key(message_id: str) -> dict[str, str]:
    """The ledger entry of one intended send: written before the provider is called."""
    return {"pk": f"MESSAGE#{message_id}", "sk": MESSAGE_SK}


def message_ref_sk(at: str, message_id: str) -> str:
    """A person's messages, newest last, under the profile's partition."""
    return f"{MESSAGE_REF_PREFIX}{at}#{message_id}"


def origin_pk(kind: str, origin_id: str) -> str:
    """A rule's or campaign's messages as they were written before sharding (one partition per
    origin): still read, so references written then stay listed."""
    return f"ORIGIN#{kind}#{origin_id}"


def origin_shard_pk(kind: str, origin_id: str, shard: int) -> str:
    """One shard of an origin's message references (logic/sharding.py: the shard is derived from
    the message id, the count from the expected send rate)."""
    return f"ORIGIN#{kind}#{origin_id}#{shard:02d}"


def origin_pks(kind: str, origin_id: str, shards: int) -> list[str]:
    """Every partition key an origin's references can be under: each shard, and the unsharded key."""
    return [origin_shard_pk(kind, origin_id, shard) for shard in range(shards)] + [origin_pk(kind, origin_id)]


def caps_key(profile_id: str) -> dict[str, str]:
    """A person's recent sends, one item, so a cap check-and-reserve is one conditional write."""
    return {"pk": profile_pk(profile_id), "sk": CAPS_SK}


def fire_key(profile_id: str, rule_id: str) -> dict[str, str]:
    return {"pk": profile_pk(profile_id), "sk": f"FIRE#{rule_id}"}


def suppression_key(channel: str, address: str) -> dict[str, str]:
    """Suppression is per address, not per profile: a bounced address bounces for everyone."""
    return {"pk": f"SUPP#{channel}#{address}", "sk": SUPPRESSION_SK}


def inbox_sk(at: str, message_id: str) -> str:
    return f"{INBOX_PREFIX}{at}#{message_id}"


def send_rate_key(channel: str, epoch_second: int, shard: int) -> dict[str, str]:
    """One shard of a channel's send tokens for one second (the shards' limits add up to the rate)."""
    return {"pk": f"SENDRATE#{channel}#{epoch_second}#{shard}", "sk": RATE_SK}


def channel_pause_key(channel: str) -> dict[str, str]:
    """A channel's sending state (paused after an account-level provider error, or not)."""
    return {"pk": f"CHANNEL#{channel}", "sk": "PAUSE"}


def timer_pk(minute: str, shard: int) -> str:
    """Timers due in one minute (YYYYMMDDHHMM), spread over shards to stay off one hot key."""
    return f"TIMER#{minute}#{shard}"


TIMER_CURSOR_KEY = {"pk": "TIMERCURSOR", "sk": "TIMERCURSOR"}


# Automation (DataTable): journeys, campaigns, segment refreshes ----------------------------
STATS_SHARDS = 16  # the counters' shards before they were sharded by partition key (stats_key)
JOURNEY_PREFIX = "JOURNEY#"
TOUCH_PREFIX = "TOUCH#"


def journey_instance_key(profile_id: str, journey_id: str) -> dict[str, str]:
    """A person's instance of a journey, beside their profile: one query finds all of them."""
    return {"pk": profile_pk(profile_id), "sk": f"{JOURNEY_PREFIX}{journey_id}"}


def journey_entries_key(journey_id: str, day: str) -> dict[str, str]:
    """How many people entered a journey on one UTC day (YYYYMMDD): its daily cap."""
    return {"pk": f"JENTRIES#{journey_id}#{day}", "sk": "JENTRIES"}


def stats_key(kind: str, origin_id: str, run: str, shard: int) -> dict[str, str]:
    """One of the 16 shards of a run's counters as they were written before counters were sharded
    by partition key: all under one partition key, so together held to one partition's 1,000
    WCU/s. No longer written; still read, so counts from then stay in the totals."""
    return {"pk": stats_pk(kind, origin_id), "sk": f"{run}#{shard:02d}"}


def stats_pk(kind: str, origin_id: str) -> str:
    return f"STATS#{kind}#{origin_id}"


def stats_shard_key(kind: str, origin_id: str, run: str, shard: int) -> dict[str, str]:
    """A campaign run's or journey's counters on one shard, each shard its own partition key
    (logic/sharding.py: the count comes from the expected send rate); readers add the shards up."""
    return {"pk": f"STATS#{kind}#{origin_id}#{shard:02d}", "sk": run}


def stats_pks(kind: str, origin_id: str, shards: int) -> list[str]:
    """Every partition key an origin's counters can be under: each shard, then the unsharded key."""
    return [f"STATS#{kind}#{origin_id}#{shard:02d}" for shard in range(shards)] + [stats_pk(kind, origin_id)]


def campaign_run_key(campaign_id: str, run_id: str) -> dict[str, str]:
    return {"pk": f"CAMPAIGN#{campaign_id}", "sk": f"RUN#{run_id}"}


def campaign_part_key(campaign_id: str, run_id: str, part: int) -> dict[str, str]:
    return {"pk": f"CAMPAIGN#{campaign_id}", "sk": f"PART#{run_id}#{part:04d}"}


def touch_sk(at: str, kind: str, origin_id: str, run: str) -> str:
    """A campaign that reached (or held out) a person, under their profile, for attribution."""
    return f"{TOUCH_PREFIX}{at}#{kind}#{origin_id}#{run}"


def once_key(scope: str, subject: str) -> dict[str, str]:
    """A marker that something happened once (a conversion counted, a revenue event added)."""
    return {"pk": f"ONCE#{scope}", "sk": subject}


def refresh_job_key(job_id: str) -> dict[str, str]:
    """A segment backfill: its parts and progress."""
    return {"pk": f"REFRESH#{job_id}", "sk": "JOB"}


def bulk_import_key(import_id: str) -> dict[str, str]:
    """A bulk import (logic/imports/bulk.py): its file, mapping, layout and counts."""
    return {"pk": f"IMPORT#{import_id}", "sk": "JOB"}


def bulk_import_part_key(import_id: str, part: int) -> dict[str, str]:
    """A finished part of a bulk import, with its counts and first errors."""
    return {"pk": f"IMPORT#{import_id}", "sk": f"PART#{part:05d}"}


def destination_queue_pk(destination_id: str) -> str:
    """Events waiting for a destination, one item each, sorted by their feed order (seq)."""
    return f"DQ#{destination_id}"


def destination_failed_pk(destination_id: str) -> str:
    """Events a destination refused or that outlived its retries, kept for a redrive (TTL)."""
    return f"DF#{destination_id}"


def destination_state_key(destination_id: str) -> dict[str, str]:
    """A destination's delivery state: its figures, its retry clock and its drain lease."""
    return {"pk": f"DS#{destination_id}", "sk": "STATE"}


# ConfigTable ----------------------------------------------------------------------------
SOURCE_PK = "SOURCE"
WRITE_KEY_PK = "WRITEKEY"
API_KEY_PK = "APIKEY"


def secret_digest(secret: str) -> str:
    """Keys are stored as digests: a leaked table does not leak credentials."""
    return hashlib.sha256(secret.encode()).hexdigest()


def source_key(source_id: str) -> dict[str, str]:
    return {"pk": SOURCE_PK, "sk": source_id}


def write_key_key(write_key: str) -> dict[str, str]:
    return {"pk": WRITE_KEY_PK, "sk": secret_digest(write_key)}


def api_key_key(digest: str) -> dict[str, str]:
    return {"pk": API_KEY_PK, "sk": digest}


RULE_PK = "RULE"
TEMPLATE_PK = "TEMPLATE"
SECRET_PK = "SECRET"  # noqa: S105 - a key prefix, not a secret


SEGMENT_PK = "SEGMENT"
CAMPAIGN_PK = "CAMPAIGN"
JOURNEY_PK = "JOURNEY"


def config_key(kind: str, doc_id: str) -> dict[str, str]:
    """The current version of a versioned document (RULE, SEGMENT, CAMPAIGN, JOURNEY)."""
    return {"pk": kind, "sk": doc_id}


def config_versions_pk(kind: str, doc_id: str) -> str:
    return f"{kind}V#{doc_id}"


def config_version_key(kind: str, doc_id: str, version: int) -> dict[str, str]:
    """Every saved version, kept for history and rollback."""
    return {"pk": config_versions_pk(kind, doc_id), "sk": f"{version:08d}"}


def rule_key(rule_id: str) -> dict[str, str]:
    return config_key(RULE_PK, rule_id)


def rule_version_key(rule_id: str, version: int) -> dict[str, str]:
    return config_version_key(RULE_PK, rule_id, version)


def template_version_key(template_id: str, version: int) -> dict[str, str]:
    """Every version of a template; the TEMPLATE item points at the latest and the approved one."""
    return {"pk": f"TEMPLATEV#{template_id}", "sk": f"{version:08d}"}


def template_key(template_id: str) -> dict[str, str]:
    return {"pk": TEMPLATE_PK, "sk": template_id}


ASSET_PK = "ASSET"


def asset_key(name: str) -> dict[str, str]:
    """An asset of the library: its kind, tags, latest and published version (ConfigTable)."""
    return {"pk": ASSET_PK, "sk": name}


def asset_version_key(name: str, version: int) -> dict[str, str]:
    """Every version of an asset: its file's facts and its review state."""
    return {"pk": f"ASSETV#{name}", "sk": f"{version:08d}"}


def secret_key(name: str) -> dict[str, str]:
    return {"pk": SECRET_PK, "sk": name}


# Experiments (DataTable): definitions by id, each phase's final auto-winner decision ------
EXPERIMENT_PK = "EXPERIMENT"


def experiment_key(experiment_id: str) -> dict[str, str]:
    return {"pk": EXPERIMENT_PK, "sk": experiment_id}


def experiment_decision_key(experiment_id: str, phase: int) -> dict[str, str]:
    """The final decision of a phase: written once (a conditional put), never replaced."""
    return {"pk": f"EXPERIMENTDECISION#{experiment_id}", "sk": f"PHASE#{phase:06d}"}


# Offers (DataTable): definitions, code pools, who holds what, redemptions ----------------
OFFER_PK = "OFFER"
OFFER_HOLDING_PREFIX = "OFFER#"
UNKNOWN_COUPON_PK = "COUPONUNKNOWN"


def offer_key(offer_id: str) -> dict[str, str]:
    """An offer's definition; all offers under one key, so listing them is one query."""
    return {"pk": OFFER_PK, "sk": offer_id}


def offer_pool_key(offer_id: str) -> dict[str, str]:
    """The offer's claim cursor: `next` (codes issued, the next slot to hand out) and `size`
    (slots filled). Every claim moves `next` by one with a condition on its value."""
    return {"pk": f"OFFERPOOL#{offer_id}", "sk": "POOL"}


def offer_stats_key(offer_id: str) -> dict[str, str]:
    """Redemption and refusal counters (kept off the pool item, which every claim writes)."""
    return {"pk": f"OFFERPOOL#{offer_id}", "sk": "STATS"}


def offer_slot_pk(offer_id: str) -> str:
    return f"OFFERSLOT#{offer_id}"


def offer_slot_key(offer_id: str, slot: int) -> dict[str, str]:
    """One code of the offer, in upload (or issue) order, with its state and holder."""
    return {"pk": offer_slot_pk(offer_id), "sk": f"{slot:09d}"}


def coupon_key(code: str) -> dict[str, str]:
    """A code -> its offer and slot: a code belongs to one offer, so redemption finds it by name."""
    return {"pk": f"COUPON#{code}", "sk": "COUPON"}


def offer_holding_key(profile_id: str, offer_id: str) -> dict[str, str]:
    """What a person holds of an offer: the current code, how many, the code each cause got."""
    return {"pk": profile_pk(profile_id), "sk": f"{OFFER_HOLDING_PREFIX}{offer_id}"}


def offer_refusal_key(profile_id: str, offer_id: str, cause: str) -> dict[str, str]:
    return {"pk": profile_pk(profile_id), "sk": f"OFFERREFUSAL#{offer_id}#{cause}"}


def offer_use_key(offer_id: str, event_id: str) -> dict[str, str]:
    """One redemption event applied to an offer's code (its message id: a redelivery is a no-op)."""
    return {"pk": f"OFFERUSE#{offer_id}", "sk": event_id}


def unknown_coupon_key(event_id: str) -> dict[str, str]:
    return {"pk": UNKNOWN_COUPON_PK, "sk": event_id}


# Privacy requests (services/privacy.py) --------------------------------------------------
# Every request is one item of one partition, its sk time-ordered (the listing reads it newest
# first); requests are rare (100k a month is 0.04/s), far below a partition's write rate.
REGULATIONS_PK = "REGULATIONS"
PRIVACY_SUPPRESSION_SK = "PRIVSUP"


def regulation_key(regulate_id: str) -> dict[str, str]:
    return {"pk": REGULATIONS_PK, "sk": regulate_id}


def regulation_subjects_key(subjects_digest: str) -> dict[str, str]:
    """The latest request on one set of subjects: a repeat of it is the same request."""
    return {"pk": f"REGSUBJ#{subjects_digest}", "sk": "REGSUBJ"}


def privacy_suppression_key(identifier_hash: str) -> dict[str, str]:
    """A person suppressed by a privacy request, by the salted hash of one of their identifiers:
    the item holds no identifier itself."""
    return {"pk": f"PRIVSUP#{identifier_hash}", "sk": PRIVACY_SUPPRESSION_SK}


# AuditTable ----------------------------------------------------------------------------
# One partition: the chain is one sequence, appended under a condition on its head.
AUDIT_PK = "AUDIT"
AUDIT_HEAD_KEY = {"pk": AUDIT_PK, "sk": "HEAD"}
AUDIT_ENTRY_PREFIX = "E#"


def audit_entry_sk(seq: int) -> str:
    return f"{AUDIT_ENTRY_PREFIX}{seq:012d}"
