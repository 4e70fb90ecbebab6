"""The stack's own settings shown to admins."""

from __future__ import annotations

from typing import Any

from midstage.services.admin.ports import Secrets


def webhook_secret(config: Secrets) -> dict[str, Any]:
    """The secret that signs webhook callbacks (providers' delivery feedback)."""
    return {"secret": config.secret("webhooks").hex()}
