"""The commands a developer types: `make help` names every target, and `make invoke` with a sample
that does not exist says which ones do."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from infra.localcloud.__main__ import _missing_sample_hint

ROOT = Path(__file__).resolve().parents[2]


def test_given_the_makefile_when_help_is_read_then_it_names_every_target() -> None:
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    phony = re.search(r"^\.PHONY:(.*?)(?<!\\)$", text, re.MULTILINE | re.DOTALL)
    assert phony is not None
    targets = set(phony.group(1).replace("\\", " ").split()) - {"help"}
    help_recipe = text.split("\nhelp:\n", 1)[1].split("\n\n", 1)[0]

    assert sorted(t for t in targets if f"make {t} " not in help_recipe and f"make {t}:" not in help_recipe) == []


def test_given_a_function_with_samples_when_a_missing_case_is_asked_then_its_cases_are_listed() -> None:
    hint = _missing_sample_hint(ROOT / "events" / "deliver" / "nope.json")

    assert hint == "no sample 'nope' for deliver; deliver's samples: welcome-email"
    named = _missing_sample_hint(ROOT / "events" / "collect" / ".json")
    assert named == "no sample named; collect's samples: bad-key, batch-gzip, identify, malformed, track"


@pytest.mark.parametrize("function", ["nope", ""])
def test_given_a_function_without_samples_when_asked_then_the_functions_with_samples_are_listed(function: str) -> None:
    hint = _missing_sample_hint(ROOT / "events" / function / "x.json")

    assert hint is not None
    listed = hint.split("functions with samples: ", 1)[1].split(", ")
    assert listed == sorted(path.name for path in (ROOT / "functions").iterdir() if (path / "handler.py").exists())


def test_given_an_event_file_outside_events_when_missing_then_no_hint_hides_the_error() -> None:
    assert _missing_sample_hint(ROOT / "elsewhere" / "x.json") is None
