"""What `make run` sets up so a new user can send an event within a minute."""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING

from infra.localcloud.library import seed_library
from midstage.adapters.config_store import ConfigStore, new_write_key
from midstage.clock import system_clock
from midstage.errors import NotFound
from midstage.models.admin import Source, stamp

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

    from infra.localcloud.cloud import LocalCloud


# Fixed, well-known keys for the local cloud only, so that the sample events under events/ and
# copy-pasted snippets work against any fresh local cloud. Never use them on AWS.
DEMO_WRITE_KEY = "wk_local_demo"
DEMO_ADMIN_KEY = "msk_local_admin"
DEMO_SOURCE_ID = "src_localdemo"


def bootstrap(
    cloud: LocalCloud, *, echo: bool = True, random_keys: bool = False, library: bool = False
) -> tuple[Source, str]:
    """Create a demo source and an admin API key; print how to use them. Returns both.
    With `library`, the shipped rules and templates are applied too (what `make run` does)."""
    source, admin_key = seed(cloud.outputs["ConfigTableName"], cloud.client("dynamodb"), random_keys=random_keys)
    verify_senders(cloud)
    if library:
        seed_library(cloud, admin_key, echo=echo)
    if echo:
        print(instructions(cloud.api_url, source.write_key, admin_key))
    return source, admin_key


def seed(config_table: str, dynamodb: DynamoDBClient, *, random_keys: bool = False) -> tuple[Source, str]:
    """The demo source and an admin key, written straight to the ConfigTable."""
    store = ConfigStore(config_table, client=dynamodb)
    if not random_keys:
        try:
            # A cloud restored from its saved state has them already: the fixed keys still work.
            return store.get_source(DEMO_SOURCE_ID), DEMO_ADMIN_KEY
        except NotFound:
            pass
    write_key = new_write_key() if random_keys else DEMO_WRITE_KEY
    now = system_clock()
    source = Source(id=DEMO_SOURCE_ID, name="Demo website", write_key=write_key, created_at=stamp(now))
    store.create_source(source)
    _, admin_key = store.create_api_key("local admin", "admin", None if random_keys else DEMO_ADMIN_KEY, now=now)
    return source, admin_key


def verify_senders(cloud: LocalCloud) -> None:
    """SES sends only from verified identities, locally too: verify the default sender's domain
    (on AWS that is a DNS step the operator takes once; see docs/operations.md)."""
    sender = cloud.function("DeliverFunction").environment.get("EMAIL_SENDER", "")
    if "@" in sender:
        cloud.client("ses").verify_domain_identity(Domain=sender.rsplit("@", 1)[1].strip("> "))


def instructions(api: str, write_key: str, admin_key: str) -> str:
    return textwrap.dedent(
        f"""
        Demo source ready.
          write key   {write_key}
          admin key   {admin_key}   (role: admin)

        Send an event:
          curl -s -u '{write_key}:' -H 'content-type: application/json' \\
            -d '{{"userId":"ann","event":"Order Completed","properties":{{"revenue":42}}}}' \\
            {api}/v1/track

        Or from Python (pip install segment-analytics-python):
          import segment.analytics as analytics
          analytics.write_key = "{write_key}"
          analytics.host = "{api}"
          analytics.identify("ann", {{"email": "ann@example.com", "plan": "pro"}})
          analytics.track("ann", "Order Completed", {{"revenue": 42}})
          analytics.flush()

        Then read the profile:
          curl -s -H 'authorization: Bearer {admin_key}' {api}/v1/profiles/user_id:ann

        Or open the console at {api}/console and sign in with the admin key.

        Ctrl-C stops it; what you set up is kept for the next `make run` (--fresh starts empty).
        """
    )
