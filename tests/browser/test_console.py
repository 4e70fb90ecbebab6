"""The marketers' console in headless Chromium against the tier's local cloud: sign in with an
admin key, find a person tracked by email and see the timeline grow, a viewer key sees masked
contact data, the switch to Simplified Chinese, and axe-core over every page in both languages.

Each page is photographed in both languages; with MIDSTAGE_CONSOLE_SCREENSHOTS=1 the pictures
go to docs/console/ (for docs/console.md), otherwise to the test's temporary folder.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import NODE_MODULES, _unavailable, profile_when
from tests.e2e.conftest import Platform

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "docs" / "console"
AXE = NODE_MODULES / "axe-core" / "axe.min.js"
WAIT_MS = 30_000  # an upper bound for the page to show what it loads, never an assertion on speed


class Console:
    """One browser profile on the console, with every request and page error it saw."""

    def __init__(self, browser: Any, platform: Platform, pictures: Path, *, bypass_csp: bool = False) -> None:
        self.context = browser.new_context(
            viewport={"width": 1200, "height": 820}, locale="en-US", bypass_csp=bypass_csp
        )
        self.context.set_default_timeout(WAIT_MS)
        self.urls: list[str] = []
        self.errors: list[str] = []
        self.context.on("request", lambda r: self.urls.append(r.url))
        self.page = self.context.new_page()
        self.page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        self.platform = platform
        self.pictures = pictures

    def open(self) -> None:
        self.page.goto(f"{self.platform.url}/console")

    def sign_in(self, key: str) -> None:
        self.page.get_by_label("Admin API key").fill(key)
        self.page.get_by_role("button", name="Sign in").click()

    def find(self, ref: str) -> None:
        self.page.get_by_role("link", name="People").click()
        self.page.get_by_label("Find a person").fill(ref)
        self.page.get_by_label("Find a person").press("Enter")
        self.page.locator("[data-panel=timeline]").wait_for()

    def panel(self, name: str) -> Any:
        return self.page.locator(f"[data-panel={name}]")

    def language(self, value: str) -> None:
        self.page.locator("#language").select_option(value)

    def photograph(self, name: str, panel: str | None = None) -> None:
        """The window, or one panel of the page whole (a person's timeline is below the fold)."""
        shot = self.panel(panel) if panel else self.page
        shot.screenshot(path=str(self.pictures / f"{name}.png"))


@pytest.fixture
def console(chromium: Any, platform: Platform, tmp_path: Path) -> Iterator[Console]:
    pictures = SCREENSHOTS if os.environ.get("MIDSTAGE_CONSOLE_SCREENSHOTS") == "1" else tmp_path
    pictures.mkdir(parents=True, exist_ok=True)
    opened = Console(chromium, platform, pictures)
    try:
        yield opened
        assert opened.errors == []
        # The key travels in a header only: no request ever carried it in its URL
        assert not [url for url in opened.urls if platform.admin_key in url]
    finally:
        opened.context.close()


# A trait that would run if the page ever parsed data as HTML.
MARKUP = '<img src="x" onerror="window.ran = 1"><script>window.ran = 2</script>'


def someone(platform: Platform) -> dict[str, str]:
    """A person made through the tracking API: identified with an email and traits, one event."""
    run = uuid.uuid4().hex[:10]
    person = {"user": f"console-{run}", "email": f"mei.{run}@example.com", "plan": f"plan-{run}"}
    traits = {"email": person["email"], "firstName": "Mei", "plan": person["plan"], "bio": MARKUP}
    assert platform.track("/v1/identify", {"userId": person["user"], "traits": traits}).status == 200
    assert platform.track("/v1/track", {"userId": person["user"], "event": "Signed Up"}).status == 200
    profile_when(platform, f"email:{person['email']}", lambda p: _counted(p, "Signed Up"))
    return person


def said(locator: Any, text: str) -> None:
    """`locator` comes to say exactly `text` (the page answers after the API does)."""
    from playwright.sync_api import expect

    expect(locator).to_have_text(text, timeout=WAIT_MS)


def counted(figure: Any) -> None:
    """A figure of the overview comes to count someone (it is "0" until the report sees them)."""
    from playwright.sync_api import expect

    expect(figure).not_to_have_text("0", timeout=WAIT_MS)
    assert int(figure.inner_text().replace(",", "")) > 0


def _counted(profile: dict[str, Any], event: str) -> None:
    assert event in profile["computed"]["event_counts"], profile["computed"]["event_counts"]


def test_a_wrong_key_is_told_so_and_an_admin_key_signs_in_with_its_role(console: Console, platform: Platform) -> None:
    page = console.page
    # Given someone tracked this week, and the console opened at /console
    someone(platform)
    console.open()
    assert page.title() == "Midstage console"
    console.photograph("sign-in-en")
    # When a key that does not exist is given, then the page says so and stays on sign-in
    console.sign_in("msk_not_a_key")
    said(page.get_by_role("alert"), "This key is not valid: it is unknown or revoked. Check it and try again.")
    assert page.get_by_role("link", name="Overview").is_hidden()
    # When the admin key is given, then the overview opens and the role is shown
    console.sign_in(console.platform.admin_key)
    page.get_by_role("heading", name="Overview", exact=True).wait_for()
    said(page.locator("#who"), "local admin · role: admin")
    # And Refresh computes this week's review again, which counts the people tracked
    page.get_by_role("button", name="Refresh").click()
    counted(page.locator("[data-kpi=people] .figure"))
    page.locator("#campaigns-title").wait_for()
    console.photograph("overview-en")
    # And the key is in this tab's sessionStorage only
    stored = page.evaluate("() => [JSON.stringify(sessionStorage), JSON.stringify(localStorage)]")
    assert console.platform.admin_key in stored[0] and console.platform.admin_key not in stored[1]
    # When signing out, then the key is gone and sign-in is shown again
    page.get_by_role("button", name="Sign out").click()
    page.get_by_label("Admin API key").wait_for()
    assert console.platform.admin_key not in page.evaluate("() => JSON.stringify(sessionStorage)")


def test_a_person_tracked_by_email_is_found_and_their_timeline_grows_on_refresh(
    console: Console, platform: Platform
) -> None:
    # Given a person made through the tracking API
    person = someone(platform)
    console.open()
    console.sign_in(platform.admin_key)
    # When they are looked up by email
    console.find(f"email:{person['email']}")
    # Then their traits, identities and timeline are shown, unmasked for an admin
    traits = console.panel("traits")
    assert person["plan"] in traits.inner_text() and person["email"] in traits.inner_text()
    assert person["user"] in console.panel("identities").inner_text()
    assert "Signed Up" in console.panel("timeline").inner_text()
    assert console.page.locator("[data-masked]").count() == 0
    # And a trait holding markup is shown as text, and nothing in it ran
    assert MARKUP in traits.inner_text()
    assert console.page.evaluate("() => window.ran") is None
    # And the rest of the 360 view is there: one profile, so no merges
    for name in ("computed", "segments", "tags", "consents", "messages", "journeys"):
        assert console.panel(name).is_visible(), name
    assert console.panel("merges").inner_text().split() == ["Merges", "None."]
    assert "Order Completed" not in console.panel("timeline").inner_text()
    console.photograph("person-en")
    # When they order and the page is refreshed
    order = {"userId": person["user"], "event": "Order Completed", "properties": {"revenue": 42, "order_id": "o-1"}}
    assert platform.track("/v1/track", order).status == 200
    profile_when(platform, f"user_id:{person['user']}", lambda p: _counted(p, "Order Completed"))
    console.page.get_by_role("button", name="Refresh").click()
    # Then the order is on the timeline, newest first
    newest = console.panel("timeline").locator("tbody tr").first
    newest.filter(has_text="Order Completed").wait_for()
    assert '"order_id":"o-1"' in newest.inner_text()
    console.photograph("person-timeline-en", panel="timeline")
    # And a reload of the page (same tab) shows the same person without signing in again
    console.page.reload()
    console.panel("timeline").filter(has_text="Order Completed").wait_for()
    # And an address with a broken escape is searched for as typed, not a broken page
    console.page.goto(f"{platform.url}/console#/people/email:%E0%A4")
    said(console.page.get_by_role("alert"), "Nobody has the identifier email:%E0%A4.")
    console.page.goto(f"{platform.url}/console#/people/email:{person['email']}")
    # And the same view in Chinese
    console.language("zh-CN")
    console.page.get_by_role("heading", name="时间线").wait_for()
    console.photograph("person-zh")
    console.photograph("person-timeline-zh", panel="timeline")


def test_a_viewer_key_sees_contact_data_masked_and_no_consents(console: Console, platform: Platform) -> None:
    # Given a person and a viewer key
    person = someone(platform)
    created = platform.admin("POST", "/v1/api-keys", {"name": "Analyst", "role": "viewer"})
    assert created.status == 201, created.body
    console.open()
    # When the viewer signs in and finds the person
    console.sign_in(created.body["secret"])
    console.page.get_by_role("heading", name="Overview", exact=True).wait_for()
    said(console.page.locator("#who"), "Analyst · role: viewer")
    console.find(f"user_id:{person['user']}")
    # Then the page says contact data is masked and shows no email in full anywhere
    assert console.page.locator("[data-masked]").inner_text() == (
        "Contact data is masked: your role is below data operator."
    )
    text = console.page.locator("main").inner_text()
    assert person["email"] not in text
    local, domain = person["email"].split("@")
    assert f"{local[0]}***@{domain}" in console.panel("identities").inner_text()
    assert person["plan"] in console.panel("traits").inner_text()  # traits that are not contact data stay
    assert console.panel("consents").inner_text().endswith("Consents need the data operator role.")
    console.photograph("person-viewer-en")
    # When the key is revoked while the page is open, then the next refresh sends the viewer back
    # to sign-in, saying why, and the key is no longer kept
    assert platform.admin("DELETE", f"/v1/api-keys/{created.body['id']}").status == 200
    console.page.get_by_role("button", name="Refresh").click()
    said(console.page.get_by_role("alert"), "The key no longer works (revoked?). Sign in again.")
    assert console.page.get_by_label("Admin API key").is_visible()
    assert created.body["secret"] not in console.page.evaluate("() => JSON.stringify(sessionStorage)")


def test_the_language_switch_shows_the_console_in_simplified_chinese(console: Console, platform: Platform) -> None:
    page = console.page
    someone(platform)
    console.open()
    # When Simplified Chinese is chosen before signing in
    console.language("zh-CN")
    # Then the page speaks Chinese and says so to assistive technology
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    page.get_by_label("管理 API 密钥").wait_for()
    console.photograph("sign-in-zh")
    page.get_by_label("管理 API 密钥").fill("msk_wrong")
    page.get_by_role("button", name="登录").click()
    said(page.get_by_role("alert"), "此密钥无效：未知或已被吊销。请检查后重试。")  # noqa: RUF001 -- the page's Chinese punctuation
    page.get_by_label("管理 API 密钥").fill(platform.admin_key)
    page.get_by_role("button", name="登录").click()
    page.get_by_role("heading", name="概览", exact=True).wait_for()
    said(page.locator("#who"), "local admin · 角色：管理员")  # noqa: RUF001 -- the page's Chinese punctuation
    assert page.get_by_role("navigation").inner_text().split() == [
        "概览",
        "用户",
        "分群",
        "营销活动",
        "实验",
        "自动化",
        "隐私请求",
        "审计日志",
        "数据源与密钥",
    ]
    page.get_by_role("button", name="刷新").click()
    counted(page.locator("[data-kpi=people] .figure"))
    page.locator("[data-outcome=delivered] th").filter(has_text="已送达").wait_for()
    page.locator("#campaigns-title").wait_for()
    console.photograph("overview-zh")
    # And the choice is kept across a reload; English comes back with the switch
    page.reload()
    page.get_by_role("heading", name="概览", exact=True).wait_for()
    console.language("en")
    page.get_by_role("heading", name="Overview", exact=True).wait_for()
    assert page.locator("html").get_attribute("lang") == "en"
    # And the people page in Chinese, before a search
    console.language("zh-CN")
    page.get_by_role("link", name="用户").click()
    page.get_by_label("查找用户").wait_for()
    console.photograph("people-zh")
    console.language("en")
    page.get_by_label("Find a person").wait_for()
    console.photograph("people-en")


def test_every_string_has_its_chinese_and_the_keyboard_reaches_every_control(console: Console) -> None:
    page = console.page
    console.open()
    # The tables the page runs with (the unit tier reads the file; this is what the browser got)
    missing = page.evaluate(
        """async () => {
            const { STRINGS } = await import("/console/i18n.js");
            const en = Object.keys(STRINGS.en), zh = Object.keys(STRINGS["zh-CN"]);
            return [en.filter((k) => !zh.includes(k)), zh.filter((k) => !en.includes(k)), en.length];
        }"""
    )
    assert missing[:2] == [[], []] and missing[2] > 50

    # The key's field has the focus, and the keyboard walks every control around it, each with a
    # visible focus ring: back to the language switch and the skip link, forward to the button
    def focused() -> list[str]:
        return page.evaluate(  # type: ignore[no-any-return]
            "() => [document.activeElement.id || document.activeElement.textContent.trim(),"
            " getComputedStyle(document.activeElement).outlineStyle]"
        )

    assert focused()[0] == "key"
    walk = []
    for key in ("Shift+Tab", "Shift+Tab", "Tab", "Tab", "Tab"):
        page.keyboard.press(key)
        walk.append(focused())
    assert [name for name, _ in walk] == ["language", "Skip to content", "language", "key", "Sign in"]
    assert all(style == "solid" for _, style in walk), walk


SERIOUS = """async () => {
    const result = await axe.run(document);
    const serious = result.violations
        .filter((v) => v.impact === "serious" || v.impact === "critical")
        .map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`);
    return [result.passes.length, serious];
}"""
REFUSED = {
    "en": "This key is not valid: it is unknown or revoked. Check it and try again.",
    "zh-CN": "此密钥无效：未知或已被吊销。请检查后重试。",  # noqa: RUF001 -- the page's Chinese punctuation
}


def test_axe_finds_no_serious_violation_on_any_page_in_either_language(
    chromium: Any, platform: Platform, tmp_path: Path
) -> None:
    _unavailable([(AXE.exists(), "axe-core is not installed: run `npm ci --prefix tests/browser`")])
    # Given a person, and the console in a tab that lets axe-core in (the page's own policy
    # admits only its own scripts)
    person = someone(platform)
    console = Console(chromium, platform, tmp_path, bypass_csp=True)
    page = console.page
    checked: dict[str, tuple[int, list[str]]] = {}
    try:
        console.open()
        page.add_script_tag(path=str(AXE))
        for language, overview, people in (("en", "Overview", "People"), ("zh-CN", "概览", "用户")):
            console.language(language)
            page.locator("#key").wait_for()
            # When axe-core checks each page: sign-in with its error, the overview, a person
            page.locator("#key").fill("msk_wrong")
            page.locator("#key").press("Enter")
            said(page.locator("#signin-message"), REFUSED[language])
            checked[f"sign-in {language}"] = page.evaluate(SERIOUS)
            page.locator("#key").fill(platform.admin_key)
            page.locator("#key").press("Enter")
            page.get_by_role("heading", name=overview, exact=True).wait_for()
            page.locator("#campaigns-title").wait_for()
            page.locator("[data-kpi=people]").wait_for()
            checked[f"overview {language}"] = page.evaluate(SERIOUS)
            page.get_by_role("link", name=people).click()
            page.locator("#ref").fill(f"email:{person['email']}")
            page.locator("#ref").press("Enter")
            console.panel("timeline").wait_for()
            checked[f"person {language}"] = page.evaluate(SERIOUS)
            page.locator("#signout").click()
    finally:
        console.context.close()
    # Then axe-core ran its rules on each, and none has a serious or critical violation
    assert len(checked) == 6
    assert all(passes > 10 for passes, _ in checked.values()), checked
    assert {name: found for name, (_, found) in checked.items() if found} == {}


def test_older_events_are_added_below_the_newest_fifty_on_request(console: Console, platform: Platform) -> None:
    # Given a person with 55 page views, sent in one batch
    user = f"reader-{uuid.uuid4().hex[:10]}"
    first = datetime.now(UTC) - timedelta(hours=1)
    views = [
        {"type": "track", "userId": user, "event": "Article Read", "properties": {"n": n}, "timestamp": stamp(first, n)}
        for n in range(55)
    ]
    assert platform.track("/v1/batch", {"batch": views}).status == 200
    profile_when(platform, f"user_id:{user}", lambda p: _total(p, "Article Read", 55))
    console.open()
    console.sign_in(platform.admin_key)
    console.find(f"user_id:{user}")
    rows = console.panel("timeline").locator("tbody tr")
    # Then the newest fifty are shown, and a button offers the rest
    assert rows.count() == 50
    assert '"n":54' in rows.first.inner_text()
    # When it is pressed, then the five oldest are added below, and the button goes away
    console.page.get_by_role("button", name="Older events").click()
    counts(rows, 55)
    assert '"n":0' in rows.last.inner_text()
    assert console.page.get_by_role("button", name="Older events").is_hidden()


def stamp(start: datetime, seconds: int) -> str:
    return (start + timedelta(seconds=seconds)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def counts(rows: Any, expected: int) -> None:
    from playwright.sync_api import expect

    expect(rows).to_have_count(expected, timeout=WAIT_MS)


def _total(profile: dict[str, Any], event: str, total: int) -> None:
    assert profile["computed"]["event_counts"].get(event, {}).get("total") == total, profile["computed"]
