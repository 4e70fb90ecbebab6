"""Fuzz tier: schemathesis against a running local cloud, over docs/openapi.yaml.

Its figures are printed at the end of the run, whatever pytest captured, so that CI's output
always carries them."""

from __future__ import annotations

from typing import Any

import pytest

SUMMARY: list[str] = []


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if SUMMARY:
        terminalreporter.section("API fuzzing")
        for line in SUMMARY:
            terminalreporter.write_line(line)


@pytest.fixture
def summary() -> list[str]:
    return SUMMARY
