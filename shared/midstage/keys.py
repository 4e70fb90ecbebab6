"""Every DynamoDB key the platform writes, built in one place (item types: template.yaml)."""

from __future__ import annotations

import hashlib

# DataTable ------------------------------------------------------------------------------
PROFILE_SK = "PROFILE"
IDENTITY_SK = "ID"
MARKER_SK = "MSG"
RATE_SK = "RATE"


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
