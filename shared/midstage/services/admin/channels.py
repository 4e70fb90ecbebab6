"""The delivery channels' sending state, as the admin API shows it."""

from __future__ import annotations

from typing import Any, Protocol, get_args

from midstage.models.messaging import Channel


class ChannelRecords(Protocol):
    def record(self, channel: str) -> dict[str, Any]: ...


def channel_states(pauses: ChannelRecords) -> dict[str, Any]:
    """Every channel, paused or not; a paused one with the provider's reason, since when, how
    many account errors in a row and when it is next probed; one that was paused, when it cleared."""
    return {"channels": [pauses.record(channel) for channel in get_args(Channel)]}
