"""What delivery reads about the sender's side at send time: the state of a message's campaign."""

from __future__ import annotations

import time
from collections.abc import Callable

from midstage import keys
from midstage.adapters.config_store import ConfigStore
from midstage.models.campaigns import Campaign

# How stale a campaign's status may be when delivery acts on it: a pause or cancel takes effect on
# every deliverer at most this long after it was saved.
CAMPAIGN_STATUS_TTL_S = 5.0


class CampaignStates:
    """Campaign statuses for the delivery step, read from the config table and cached per
    container for `ttl_seconds` (a campaign's thousands of messages cost one read per TTL)."""

    def __init__(
        self,
        config: ConfigStore,
        *,
        ttl_seconds: float = CAMPAIGN_STATUS_TTL_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.ttl_seconds = ttl_seconds
        self.monotonic = monotonic
        self._seen: dict[str, tuple[float, str | None]] = {}

    def campaign_status(self, campaign_id: str) -> str | None:
        """The campaign's status, or None when it no longer exists."""
        now = self.monotonic()
        hit = self._seen.get(campaign_id)
        if hit is not None and hit[0] > now:
            return hit[1]
        campaign = self.config.find_document(keys.CAMPAIGN_PK, campaign_id, Campaign)
        status = campaign.status if campaign is not None else None
        self._seen[campaign_id] = (now + self.ttl_seconds, status)
        return status
