"""The console's function and files (functions/console): every file the page loads is served with
its type and security headers, nothing else is, and the English and Chinese tables say every word."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONSOLE = ROOT / "functions" / "console"
STATIC = CONSOLE / "static"


def _handler() -> ModuleType:
    spec = importlib.util.spec_from_file_location("console_handler_under_test", CONSOLE / "handler.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


HANDLER = _handler()


def get(path: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    event = {"version": "2.0", "rawPath": path, "rawQueryString": "", "headers": headers or {}}
    return HANDLER.lambda_handler(event, None)  # type: ignore[no-any-return]


def referenced_files() -> set[str]:
    """The files index.html links and every module imports (a page's module on first use), by name."""
    page = (STATIC / "index.html").read_text(encoding="utf-8")
    names = set(re.findall(r'(?:href|src)="console/([^"]+)"', page))
    for module in STATIC.glob("*.js"):
        source = module.read_text(encoding="utf-8")
        names |= set(re.findall(r'from "\./([^"]+)"', source)) | set(re.findall(r'import\("\./([^"]+)"\)', source))
    return names


def test_the_page_is_served_at_console_with_a_strict_security_policy() -> None:
    answer = get("/console")
    assert answer["statusCode"] == 200
    assert answer["headers"]["Content-Type"] == "text/html; charset=utf-8"
    assert "<title>Midstage console</title>" in answer["body"]
    policy = answer["headers"]["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "unsafe" not in policy
    assert answer["headers"]["X-Content-Type-Options"] == "nosniff"


def test_every_file_the_page_loads_is_served_with_its_type() -> None:
    names = referenced_files()
    assert {"app.js", "console.css", "i18n.js", "api.js", "people.js", "overview.js", "kit.js"} <= names
    assert {
        "segments.js",
        "campaigns.js",
        "experiments.js",
        "automation.js",
        "privacy.js",
        "audit.js",
        "settings.js",
    } <= names
    for name in names:
        answer = get(f"/console/{name}")
        assert answer["statusCode"] == 200, name
        expected = "text/css" if name.endswith(".css") else "text/javascript"
        assert answer["headers"]["Content-Type"].startswith(expected), name
    # And no file ships that nothing loads
    assert {p.name for p in STATIC.iterdir()} - {"index.html"} == names


@pytest.mark.parametrize(
    "path",
    [
        "/console/handler.py",
        "/console/..%2Fhandler.py",
        "/console/../handler.py",
        "/console/static/app.js",
        "/console/",
        "/console/APP.JS",
        "/consoleapp.js",
        "/console/app.js%00",
    ],
)
def test_anything_but_one_of_its_files_is_not_found(path: str) -> None:
    answer = get(path)
    assert answer["statusCode"] == 404
    assert '"code":"not_found"' in answer["body"]


def test_an_unchanged_file_is_not_sent_again() -> None:
    first = get("/console/app.js")
    etag = first["headers"]["ETag"]
    assert get("/console/app.js", {"if-none-match": etag}) == {
        "statusCode": 304,
        "headers": first["headers"],
        "body": "",
    }
    assert get("/console/app.js", {"if-none-match": f'W/{etag}, "other"'})["statusCode"] == 304
    assert get("/console/app.js", {"if-none-match": '"other"'})["statusCode"] == 200


# ------------------------------------------------------------------------------ the two languages
def _tables() -> dict[str, set[str]]:
    source = (STATIC / "i18n.js").read_text(encoding="utf-8")
    english, chinese = source.split('\n  "zh-CN": {', 1)
    chinese = chinese.split("\n};", 1)[0]
    key = re.compile(r'^\s+"?([\w.]+)"?: "', re.MULTILINE)
    return {"en": set(key.findall(english.split("en: {", 1)[1])), "zh-CN": set(key.findall(chinese))}


def test_english_and_chinese_have_the_same_words() -> None:
    tables = _tables()
    assert len(tables["en"]) > 50
    assert tables["en"] == tables["zh-CN"], tables["en"] ^ tables["zh-CN"]


def test_every_word_the_console_uses_is_in_the_tables() -> None:
    known = _tables()["en"]
    used = set(re.findall(r'data-i18n="([\w.]+)"', (STATIC / "index.html").read_text(encoding="utf-8")))
    for module in STATIC.glob("*.js"):
        used |= set(re.findall(r'\bt\("([\w.]+)"', module.read_text(encoding="utf-8")))
    # Keys built from a value: each value the code can give
    used |= {f"role.{r}" for r in ("viewer", "marketer", "data_operator", "admin")}
    used |= {
        f"nav.{page}" for page in re.findall(r"^  (\w+): \[", (STATIC / "app.js").read_text(encoding="utf-8"), re.M)
    }
    used |= {
        "yes",
        "no",
        "segments.kind.static",
        "segments.kind.dynamic",
        "experiments.srm.ok",
        "experiments.srm.alert",
    }
    used |= {"automation.fires", "automation.nofire"} | {f"campaigns.{c}" for c in ("pause", "resume", "cancel")}
    used |= {f"status.{s}" for s in ("draft", "scheduled", "running", "paused", "completed", "cancelled")}
    campaigns = (STATIC / "campaigns.js").read_text(encoding="utf-8")
    funnel = re.search(r"FUNNEL = \[([^\]]+)\]", campaigns)
    assert funnel
    used |= {f"counter.{c}" for c in re.findall(r'"(\w+)"', funnel.group(1))}
    used |= {f"engine.{e}" for e in ("bayesian", "frequentist", "sequential")} | {
        f"audit.{f}" for f in ("actor", "action", "kind")
    }
    overview = (STATIC / "overview.js").read_text(encoding="utf-8")
    for group in ("KPIS", "OUTCOMES"):
        values = re.search(group + r" = \[([^\]]+)\]", overview)
        assert values, group
        prefix = "overview." if group == "KPIS" else "outcome."
        used |= {prefix + v for v in re.findall(r'"(\w+)"', values.group(1))}
    assert used - known == set()
    assert len(used) > 40
