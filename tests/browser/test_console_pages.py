"""The console's later pages in headless Chromium against the tier's local cloud: segments with
the live estimate, campaigns with their stats and controls, an experiment's results, rules,
templates and journeys, privacy requests from a person's page, the audit log, sources and keys;
what each role sees; axe-core over every page in both languages.

Screenshots go to docs/console/ with MIDSTAGE_CONSOLE_SCREENSHOTS=1, else to a temporary folder.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from midstage.adapters.archive_engines import S3Archive
from midstage.logic.archive import records
from tests.browser.conftest import _unavailable, eventually, profile_when
from tests.browser.test_console import AXE, SERIOUS, Console, said, someone
from tests.e2e.conftest import Platform
from tests.integration.test_experiments_archive_sums import event as archived_event


@dataclass(frozen=True)
class World:
    """What the tests read: a person, a segment, a template, a campaign, an experiment, a rule,
    a journey, and one key per role."""

    tag: str
    person: dict[str, str]
    segment: str
    template: str
    campaign: str
    experiment: str
    rule: str
    journey: str
    keys: dict[str, str]


def created(answer: Any) -> Any:
    assert answer.status in (200, 201), answer.body
    return answer.body


@pytest.fixture(scope="module")
def world(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> World:
    tag = uuid.uuid4().hex[:8]
    person = someone(platform)
    admin = platform.admin
    segment = f"plan-{tag}"
    created(
        admin(
            "POST",
            "/v1/segments",
            {
                "id": segment,
                "name": f"Plan {tag}",
                "condition": {"path": "traits.plan", "op": "eq", "value": person["plan"]},
            },
        )
    )
    template = f"hello-{tag}"
    body = {
        "id": template,
        "name": "Hello",
        "channel": "email",
        "locales": {"en": {"subject": "Hello {{ person.first_name }}", "text": "Hi {{ person.first_name }}!"}},
    }
    created(admin("POST", "/v1/templates", body))
    created(admin("POST", f"/v1/templates/{template}/approve", {"version": 1}))
    campaign = f"sale-{tag}"
    # A few minutes ahead on the tier's manual clock, which moves only when a test moves it
    far = (platform.cloud.clock.now() + timedelta(minutes=60)).isoformat(timespec="seconds").replace("+00:00", "Z")
    created(
        admin(
            "POST",
            "/v1/campaigns",
            {
                "id": campaign,
                "name": f"Winter sale {tag}",
                "audience": {"segments": [segment]},
                "message": {"channels": ["email"], "template": template},
                "variants": [{"id": "a", "percent": 50}, {"id": "b", "percent": 50}],
                "schedule": {"type": "once", "at": far},
            },
        )
    )
    created(admin("POST", f"/v1/campaigns/{campaign}/schedule"))
    experiment = f"subjects-{tag}"
    arms = [
        {"id": "a", "weight": 50, "content": {"variant": "a"}},
        {"id": "b", "weight": 50, "content": {"variant": "b"}},
    ]
    metrics = [{"id": "purchase", "kind": "conversion", "event": "Order Completed"}]
    created(
        admin(
            "POST",
            "/v1/experiments",
            {
                "id": experiment,
                "name": f"Subjects {tag}",
                "target": {"kind": "campaign", "id": campaign},
                "arms": arms,
                "goal": "purchase",
                "metrics": metrics,
            },
        )
    )
    created(admin("POST", f"/v1/experiments/{experiment}/start"))
    archive_a_phase(platform, experiment, tmp_path_factory.mktemp("archive"))
    rule = f"thanks-{tag}"
    conditions = {"path": "traits.plan", "op": "eq", "value": person["plan"]}
    actions = [{"type": "add_tag", "tag": f"thanked-{tag}"}]
    created(
        admin(
            "POST",
            "/v1/rules",
            {
                "id": rule,
                "name": f"Thanks {tag}",
                "trigger": {"type": "event", "event": "Order Completed"},
                "conditions": conditions,
                "actions": actions,
            },
        )
    )
    journey = f"onboarding-{tag}"
    steps = {
        "hello": {"type": "send", "channels": ["email"], "template": template, "next": "pause"},
        "pause": {"type": "wait", "duration": "2d", "next": "check"},
        "check": {"type": "condition", "condition": conditions, "yes": "done", "no": "done"},
        "done": {"type": "exit"},
    }
    created(
        admin(
            "POST",
            "/v1/journeys",
            {
                "id": journey,
                "name": f"Onboarding {tag}",
                "entry": {"type": "event", "event": f"Joined {tag}"},
                "start": "hello",
                "steps": steps,
            },
        )
    )
    keys = {
        role: created(admin("POST", "/v1/api-keys", {"name": f"{role} {tag}", "role": role}))["secret"]
        for role in ("viewer", "marketer", "data_operator")
    }
    keys["admin"] = platform.admin_key
    return World(tag, person, segment, template, campaign, experiment, rule, journey, keys)


# Units and buyers per arm: b converts better (30 of 400 against 20 of 400).
PHASE = {"a": (400, 20), "b": (400, 30)}


def archive_a_phase(platform: Platform, experiment: str, cache: Path) -> None:
    """The experiment's exposures and the orders after them, written to the cloud's archive as the
    delivery path writes them. The functions keep wall time (not the tier's manual clock), so
    everything is placed within the millisecond after the phase started: in the past by the time
    anyone reads the results."""
    phase = platform.admin("GET", f"/v1/experiments/{experiment}").body["phases"][-1]
    start = datetime.fromisoformat(phase["started_at"].replace("Z", "+00:00"))
    made: list[Any] = []
    for arm, (units, buyers) in PHASE.items():
        for n in range(units):
            unit = f"{experiment}-{arm}-{n}"
            seen = start + timedelta(microseconds=n)
            made.append(
                records.exposure(
                    experiment_id=experiment, variant=arm, profile_id=unit, at=seen, archived_at=seen, phase=1
                )
            )
            if n < buyers:
                made.append(archived_event(unit, "Order Completed", seen + timedelta(microseconds=500), n, 10.0))
    bucket = platform.cloud.physical_name("ArchiveBucket")
    S3Archive(bucket, "archive/", cache, client=platform.cloud.client("s3")).write(made, f"console-{experiment}")


@pytest.fixture
def console(chromium: Any, platform: Platform, tmp_path: Path) -> Iterator[Console]:
    from tests.browser import test_console

    pictures = (
        test_console.SCREENSHOTS if test_console.os.environ.get("MIDSTAGE_CONSOLE_SCREENSHOTS") == "1" else tmp_path
    )
    pictures.mkdir(parents=True, exist_ok=True)
    opened = Console(chromium, platform, pictures)
    try:
        yield opened
        assert opened.errors == []
    finally:
        opened.context.close()


def enter(console: Console, role: str, world: World, hash: str = "") -> Any:
    console.open()
    console.sign_in(world.keys[role])
    console.page.locator("#who").filter(has_text=role.replace("_", " ")).wait_for()
    if hash:
        console.page.goto(f"{console.platform.url}/console#/{hash}")
    return console.page


def visible_links(page: Any) -> list[str]:
    return [a.get_attribute("data-page") for a in page.locator("#nav a").all() if a.is_visible()]


# ------------------------------------------------------------------------------------------ segments
def test_a_segment_is_built_with_its_live_estimate_and_saved(console: Console, world: World) -> None:
    page = enter(console, "marketer", world, "segments")
    # Given the list of segments, with the one made for this run
    page.locator("[data-list=segments]").get_by_role("link", name=f"Plan {world.tag}").wait_for()
    console.photograph("segments-en")
    # When a new segment's condition is typed
    page.get_by_role("link", name="New segment").click()
    page.get_by_label("Id").fill(f"mei-{world.tag}")
    page.get_by_label("Name").fill("Mei")
    condition = page.get_by_label("Condition (JSON)")
    condition.fill('{"path": "traits.plan", "op": "eq", "value": "nobody-has-this"}')
    # Then the estimate follows: nobody, then the person once the condition names their plan
    said(page.locator("[data-estimate]"), "Estimated members: 0.")
    condition.fill(json.dumps({"path": "traits.plan", "op": "eq", "value": world.person["plan"]}))
    said(page.locator("[data-estimate]"), "Estimated members: 1.")
    assert page.locator("[data-panel=members] tbody tr").count() == 1
    # And a condition the API refuses says why, and broken JSON says so
    condition.fill('{"path": "traits.plan", "op": "bigger", "value": 1}')
    page.locator("#condition-said .message").wait_for()
    assert "bigger" in page.locator("#condition-said").inner_text()
    condition.fill('{"path": ')
    page.locator("#condition-said").filter(has_text="Not valid JSON").wait_for()
    # When it is saved, then the page is the segment's own, version 1
    condition.fill(json.dumps({"path": "traits.plan", "op": "eq", "value": world.person["plan"]}))
    said(page.locator("[data-estimate]"), "Estimated members: 1.")
    console.photograph("segment-en")
    page.get_by_role("button", name="Save").click()
    page.get_by_role("heading", name="Segment: Mei").wait_for()
    assert (
        console.platform.admin("GET", f"/v1/segments/mei-{world.tag}").body["condition"]["value"]
        == world.person["plan"]
    )
    console.language("zh-CN")
    page.locator("[data-estimate]").filter(has_text="预计成员：1 人").wait_for()  # noqa: RUF001 -- the page's Chinese punctuation
    console.photograph("segment-zh")
    page.get_by_role("link", name="全部分群").click()
    page.locator("[data-list=segments]").wait_for()
    console.photograph("segments-zh")


def test_a_viewer_reads_a_segment_but_cannot_change_or_estimate_it(console: Console, world: World) -> None:
    page = enter(console, "viewer", world, f"segments/{world.segment}")
    page.locator("[data-readonly]").wait_for()
    assert page.get_by_label("Condition (JSON)").get_attribute("readonly") is not None
    assert page.get_by_role("button", name="Save").count() == 0
    assert page.locator("[data-panel=members]").count() == 0
    page.get_by_text("The live estimate needs the marketer role.").wait_for()


# ------------------------------------------------------------------------------------------ campaigns
def test_a_campaign_is_paused_resumed_and_its_run_counted(console: Console, world: World, platform: Platform) -> None:
    page = enter(console, "marketer", world, "campaigns")
    page.locator("[data-list=campaigns]").get_by_role("link", name=f"Winter sale {world.tag}").click()
    # Given the scheduled campaign, its variants and its (empty) stats
    said(page.locator("[data-status]"), "scheduled")
    assert page.locator("[data-variants] tbody tr").count() == 2
    page.locator("[data-totals]").wait_for()
    # When it is paused, then it says so and offers to resume
    page.get_by_role("button", name="Pause").click()
    said(page.locator("[data-status]"), "paused")
    assert page.get_by_role("button", name="Pause").count() == 0
    # When it is resumed and its time comes, then the run's counters are shown on Refresh
    page.get_by_role("button", name="Resume").click()
    said(page.locator("[data-status]"), "scheduled")
    at = platform.admin("GET", f"/v1/campaigns/{world.campaign}").body["schedule"]["at"]
    platform.cloud.clock.advance(
        datetime.fromisoformat(at.replace("Z", "+00:00")) - platform.cloud.clock.now() + timedelta(seconds=5)
    )

    def ran() -> None:
        platform.settle()
        stats = platform.admin("GET", f"/v1/campaigns/{world.campaign}/stats").body
        assert stats["runs"] and all(r["parts_done"] == r["parts"] for r in stats["runs"]), stats

    eventually(ran)
    page.get_by_role("button", name="Refresh").click()
    targeted = page.locator("[data-totals] tr").filter(has_text="targeted").locator("td").nth(1)
    said(targeted, "1")
    assert page.locator("[data-blocked] tbody tr").count() >= 1
    assert page.locator("[data-panel=runs] tbody tr").count() == 1
    assert page.locator("[data-panel=stats] svg.chart").count() == 1
    console.photograph("campaign-en")
    console.language("zh-CN")
    page.get_by_role("heading", name="按拦截原因统计").wait_for()
    console.photograph("campaign-zh")


def test_a_viewer_sees_a_campaign_without_its_controls(console: Console, world: World) -> None:
    page = enter(console, "viewer", world)
    # The overview lists it, linked to its page
    page.locator("#campaigns-title").wait_for()
    page.get_by_role("link", name=f"Winter sale {world.tag}").click()
    page.locator("[data-totals]").wait_for()
    assert page.locator("[data-control]").count() == 0


# ------------------------------------------------------------------------------------------ experiments
def test_an_experiments_results_show_its_arms_srm_and_each_engine(console: Console, world: World) -> None:
    page = enter(console, "viewer", world, "experiments")
    page.locator("[data-list=experiments]").get_by_role("link", name=f"Subjects {world.tag}").wait_for()
    console.photograph("experiments-en")
    page.locator("[data-list=experiments]").get_by_role("link", name=f"Subjects {world.tag}").click()
    arms = page.locator("[data-arms] tbody tr")
    arms.first.wait_for()
    assert [r.locator("td").first.inner_text() for r in arms.all()] == ["a", "b"]
    page.locator("[data-srm]").wait_for()
    # Then the units per arm are the archived ones, the split is as planned, and each engine
    # answers for b against a, drawn as its uplift with its interval
    assert [r.locator("td").nth(2).inner_text() for r in arms.all()] == ["400", "400"]
    said(page.locator("[data-srm]"), "Sample ratio as planned (SRM p = 1): p = 1 is not below 0.001.")
    engines = page.locator("[data-engines=purchase] tbody tr")
    engines.first.wait_for()
    assert [r.locator("td").first.inner_text() for r in engines.all()] == ["Bayesian", "frequentist", "sequential"]
    assert all(r.locator("td").nth(1).inner_text() == "b" for r in engines.all())
    assert page.locator("[data-engines=purchase] tbody tr").first.locator("td").nth(2).inner_text() == "50 %"
    assert page.locator("[data-panel=metric-purchase] svg.chart circle").count() == 3
    console.photograph("experiment-en")
    console.language("zh-CN")
    page.get_by_role("heading", name="实验组").wait_for()
    console.photograph("experiment-zh")
    page.get_by_role("link", name="全部实验").click()
    page.locator("[data-list=experiments]").wait_for()
    console.photograph("experiments-zh")


# ------------------------------------------------------------------------------------------ automation
def test_rules_are_validated_as_typed_and_dry_run_against_a_person(console: Console, world: World) -> None:
    page = enter(console, "marketer", world, "automation")
    for name in ("rules", "templates", "journeys"):
        page.locator(f"[data-list={name}]").wait_for()
    console.photograph("automation-en")
    page.get_by_role("link", name=f"Thanks {world.tag}").click()
    # Given the saved rule in the editor, valid
    editor = page.locator("#rule-json")
    page.locator("#rule-json-said [data-valid=true]").wait_for()
    # When an operator is misspelt, then the issue is shown at its place
    editor.fill(editor.input_value().replace('"op": "eq"', '"op": "bigger"'))
    page.locator("#rule-json-said [data-valid=false]").filter(has_text="unknown operator 'bigger'").wait_for()
    editor.fill(editor.input_value().replace('"op": "bigger"', '"op": "eq"'))
    page.locator("#rule-json-said [data-valid=true]").wait_for()
    # When it is dry-run for the person, then it would fire
    page.get_by_label("Person (identifier)").fill(f"user_id:{world.person['user']}")
    page.get_by_role("button", name="Dry run").click()
    said(page.locator("[data-fires]"), "It would fire (matched).")
    console.photograph("rule-en")
    console.language("zh-CN")
    page.locator("#rule-json-said [data-valid=true]").filter(has_text="有效").wait_for()
    console.photograph("rule-zh")
    page.get_by_role("link", name="全部规则、模板与旅程").click()
    page.locator("[data-list=journeys]").wait_for()
    console.photograph("automation-zh")


def test_a_journey_is_drawn_as_a_graph_and_a_template_previewed(console: Console, world: World) -> None:
    page = enter(console, "marketer", world, f"automation/journey/{world.journey}")
    steps = page.locator("svg.graph [data-step]")
    steps.first.wait_for()
    assert sorted(s.get_attribute("data-step") for s in steps.all()) == ["check", "done", "hello", "pause"]
    # One arrow per pair of steps: the condition's yes and no both lead to done
    assert page.locator("svg.graph .edge").count() == 3
    assert page.locator("svg.graph .edge text").filter(has_text="yes / no").count() == 1
    page.locator("#journey-json-said [data-valid=true]").wait_for()
    console.photograph("journey-en")
    console.language("zh-CN")
    page.get_by_role("heading", name="旅程图").wait_for()
    console.photograph("journey-zh")
    console.language("en")
    page.goto(f"{console.platform.url}/console#/automation/template/{world.template}")
    page.get_by_role("heading", name="Template: Hello").wait_for()
    page.get_by_label("Person (identifier)").fill(f"user_id:{world.person['user']}")
    page.get_by_role("button", name="Preview").click()
    page.locator("[data-preview]").filter(has_text="Hello Mei").wait_for()
    console.photograph("template-en")
    console.language("zh-CN")
    page.get_by_role("heading", name="版本历史").wait_for()
    console.photograph("template-zh")


# ------------------------------------------------------------------------------------------ privacy
def test_a_data_operator_exports_a_person_and_erases_another(console: Console, world: World) -> None:
    page = enter(console, "data_operator", world)
    console.find(f"user_id:{world.person['user']}")
    # When Export is pressed, then a request is registered
    page.get_by_role("button", name="Export their data").click()
    made = page.locator("[data-request]")
    made.wait_for()
    request = made.get_attribute("data-request")
    assert request and request.startswith("reg_")
    # When Erase is pressed and confirmed for someone else (the shared person stays for the other
    # tests), then the erasure is registered and the person is gone once it has run
    leaving = f"leaving-{uuid.uuid4().hex[:8]}"
    answer = console.platform.track("/v1/identify", {"userId": leaving, "traits": {"first_name": "Lee"}})
    assert answer.status == 200, answer.body
    profile_when(console.platform, f"user_id:{leaving}", lambda profile: None)  # built before it is looked up
    console.find(f"user_id:{leaving}")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Erase this person").click()
    erased = page.locator("[data-panel=privacy] [data-request]").filter(has_not_text=request)
    erased.first.wait_for()
    erasure = erased.first.get_attribute("data-request")
    assert erasure and erasure.startswith("reg_") and erasure != request
    console.platform.settle()
    assert console.platform.admin("GET", f"/v1/profiles/user_id:{leaving}").status == 404
    console.photograph("person-privacy-en", panel="privacy")
    # And the privacy page lists the export with its due date, and opens it
    page.get_by_role("link", name="Privacy", exact=True).click()
    page.locator("[data-list=regulations]").get_by_role("link", name=request).click()
    page.get_by_role("heading", name="Report per store").wait_for()
    console.photograph("privacy-request-en")
    page.get_by_role("link", name="All privacy requests").click()
    page.locator("[data-list=regulations]").wait_for()
    console.photograph("privacy-en")
    console.language("zh-CN")
    page.get_by_role("heading", name="隐私请求").wait_for()
    console.photograph("privacy-zh")


def test_a_marketer_sees_no_privacy_buttons_and_no_privacy_page(console: Console, world: World) -> None:
    page = enter(console, "marketer", world)
    console.find(f"user_id:{world.person['user']}")
    assert page.locator("[data-panel=privacy]").count() == 0
    page.goto(f"{console.platform.url}/console#/privacy")
    said(page.locator("[data-forbidden]"), "This page needs the data operator role; your key's role may not read it.")
    assert page.locator("[data-list=regulations]").count() == 0


# ------------------------------------------------------------------------------------------ audit, sources, keys
def test_an_admin_reads_the_audit_log_sources_and_keys(console: Console, world: World) -> None:
    page = enter(console, "admin", world, "audit")
    rows = page.locator("[data-list=audit] tbody tr")
    rows.first.wait_for()
    page.get_by_label("Kind").fill("write")
    page.get_by_role("button", name="Filter").click()
    page.locator("[data-list=audit][data-query*='kind=write']").wait_for()
    page.locator("[data-list=audit] tbody tr").filter(has_text="POST /v1/api-keys").first.wait_for()
    assert all(r.locator("td").nth(3).inner_text() == "write" for r in page.locator("[data-list=audit] tbody tr").all())
    console.photograph("audit-en")
    page.get_by_role("link", name="Sources and keys").click()
    page.locator("[data-list=keys]").filter(has_text=f"viewer {world.tag}").wait_for()
    page.locator("[data-list=sources]").filter(has_text=console.platform.write_key).wait_for()
    console.photograph("settings-en")
    console.language("zh-CN")
    page.get_by_role("heading", name="管理 API 密钥").wait_for()
    console.photograph("settings-zh")
    page.get_by_role("link", name="审计日志").click()
    page.locator("[data-list=audit] tbody tr").first.wait_for()
    console.photograph("audit-zh")


@pytest.mark.parametrize(
    ("role", "links"),
    [
        ("viewer", ["overview", "people", "segments", "campaigns", "experiments", "automation"]),
        ("marketer", ["overview", "people", "segments", "campaigns", "experiments", "automation", "settings"]),
        (
            "data_operator",
            ["overview", "people", "segments", "campaigns", "experiments", "automation", "privacy", "settings"],
        ),
        (
            "admin",
            [
                "overview",
                "people",
                "segments",
                "campaigns",
                "experiments",
                "automation",
                "privacy",
                "audit",
                "settings",
            ],
        ),
    ],
)
def test_each_role_is_offered_only_the_pages_it_may_read(
    console: Console, world: World, role: str, links: list[str]
) -> None:
    page = enter(console, role, world)
    page.get_by_role("heading", name="Overview", exact=True).wait_for()
    assert visible_links(page) == links
    for hidden in {"privacy": "data operator", "audit": "admin", "settings": "marketer"}.items():
        if hidden[0] in links:
            continue
        page.goto(f"{console.platform.url}/console#/{hidden[0]}")
        said(
            page.locator("[data-forbidden]"), f"This page needs the {hidden[1]} role; your key's role may not read it."
        )
    if role == "marketer":
        page.goto(f"{console.platform.url}/console#/settings")
        page.locator("[data-list=sources]").wait_for()
        assert page.locator("[data-panel=keys]").count() == 0


# ------------------------------------------------------------------------------------------ axe
def test_axe_finds_no_serious_violation_on_the_later_pages(
    chromium: Any, platform: Platform, world: World, tmp_path: Path
) -> None:
    _unavailable([(AXE.exists(), "axe-core is not installed: run `npm ci --prefix tests/browser`")])
    console = Console(chromium, platform, tmp_path, bypass_csp=True)
    page = console.page
    pages = {
        "segments": "[data-list=segments]",
        f"segments/{world.segment}": "[data-estimate]",
        "campaigns": "[data-list=campaigns]",
        f"campaigns/{world.campaign}": "[data-totals]",
        "experiments": "[data-list=experiments]",
        f"experiments/{world.experiment}": "[data-srm]",
        "automation": "[data-list=journeys]",
        f"automation/rule/{world.rule}": "#rule-json-said [data-valid]",
        f"automation/template/{world.template}": "[data-panel=versions] table",
        f"automation/journey/{world.journey}": "svg.graph",
        "privacy": "[data-list=regulations], [data-panel] p",
        "audit": "[data-list=audit]",
        "settings": "[data-list=keys]",
        f"people/user_id:{world.person['user']}": "[data-panel=privacy]",
    }
    checked: dict[str, tuple[int, list[str]]] = {}
    try:
        console.open()
        page.add_script_tag(path=str(AXE))
        page.locator("#key").fill(platform.admin_key)
        page.locator("#key").press("Enter")
        page.locator("#who").filter(has_text="admin").wait_for()
        for language in ("en", "zh-CN"):
            console.language(language)
            for hash, ready in pages.items():
                page.goto(f"{platform.url}/console#/{hash}")
                page.locator(ready).first.wait_for()
                if page.evaluate("() => typeof axe") == "undefined":
                    page.add_script_tag(path=str(AXE))
                checked[f"{hash} {language}"] = page.evaluate(SERIOUS)
    finally:
        console.context.close()
    assert len(checked) == 2 * len(pages)
    assert all(passes > 10 for passes, _ in checked.values()), checked
    assert {name: found for name, (_, found) in checked.items() if found} == {}
