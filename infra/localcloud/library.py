"""The rule and template library (midstage.library) applied to a running local cloud, so that
`make run` starts with working examples: templates approved, rules enabled."""

from __future__ import annotations

from typing import TYPE_CHECKING

from midstage.cli import Report, apply
from midstage.definitions import LIBRARY

if TYPE_CHECKING:
    from infra.localcloud.cloud import LocalCloud


def seed_library(cloud: LocalCloud, admin_key: str, *, echo: bool = True) -> Report:
    """Apply the packaged library through the cloud's admin API (as `python -m midstage.cli
    apply library` would). Idempotent: what is already there and unchanged is left alone."""
    report = apply(LIBRARY, cloud.api_url, admin_key, echo=None)
    if echo:
        names = ", ".join(s.document.id for s in report.steps if s.document.kind == "rule")
        print(f"Rule library applied ({report.summary()}).\n  rules: {names}")
    return report
