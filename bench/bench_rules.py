"""How fast the condition language evaluates rules, next to three Python rule engines.

200 rules of 3 to 8 comparisons each (random but seeded: all/any/not trees of eq, ne, in, gt,
gte, lt, lte, between, starts_with and contains over event properties, traits, computed traits
and tags) are written once in Midstage's condition JSON and translated mechanically into:

- rule-engine: `rule_engine.Rule(text, context=Context(resolver=resolve_item))`, `rule.matches(data)`;
- cel-python: `env.program(env.compile(text))`, `program.evaluate(activation)`, the activation made
  once per event with `celpy.json_to_cel` (its cost is counted, shared by the 200 rules);
- json-logic: `json_logic.jsonLogic(rule, data)` from json-logic-qubit, the Python 3 fork of
  json-logic (json-logic 0.6.3 itself is Python 2 code and fails on Python 3).

Each (event, profile) pair of the sample is evaluated by all four and every result must agree
(the benchmark fails otherwise). Then each engine evaluates all 200 rules over the events,
single process, one core; a few timed repeats, the best one counts. Events are ~1 KB slim
"Order Completed"/"Product Viewed"/... tracks; profiles carry ~15 traits, computed traits from
`logic.profile.compute`, tags and counters.
"""

from __future__ import annotations

import json
import random
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from importlib import metadata
from typing import Any

from midstage.config import ComputedTraitSettings
from midstage.logic.conditions import Condition, Facts, compile_condition
from midstage.logic.profile import compute
from midstage.models.profile import Profile

RULES = 200
EVENTS = 40
PROFILES = 8
REPEATS = 3
SECONDS_PER_REPEAT = 1.0  # per engine; slow engines evaluate fewer events in that time
SEED = 2026
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)

# The fields rules look at: (path, type, pool of values the data and the rules draw from).
STRINGS = {
    "event.properties.currency": ["EUR", "USD", "GBP"],
    "event.properties.category": ["shoes", "bags", "hats", "coats", "socks"],
    "event.properties.coupon": ["BF-2026", "BF-VIP", "WELCOME10", "NONE", "SPRING-5"],
    "event.properties.payment_method": ["card", "paypal", "apple_pay", "klarna"],
    "event.properties.shipping_method": ["standard", "express", "pickup"],
    "event.context.page.path": ["/checkout/done", "/product/sku_1042", "/cart", "/product/sku_2210"],
    "event.name": ["Order Completed", "Product Viewed", "Product Added", "Checkout Started"],
    "traits.plan": ["free", "pro", "team", "enterprise"],
    "traits.country": ["FR", "DE", "US", "GB", "ES"],
    "traits.email": ["ada@example.com", "bob@shop.example.org", "chen@mail.example.net", "dee@example.com"],
    "traits.signup_source": ["organic", "newsletter", "partner_ads", "referral"],
    "computed.value_tier": ["low", "medium", "high", "vip"],
    "computed.lifecycle_stage": ["new", "active", "silent", "churned"],
}
INTEGERS = {
    "event.properties.item_count": (1, 8),
    "traits.age": (18, 80),
    "traits.loyalty_points": (0, 5000),
    "computed.orders": (0, 40),
}
FLOATS = {
    "event.properties.revenue": (5.0, 500.0),
    "event.properties.discount": (0.0, 50.0),
    "computed.revenue": (0.0, 8000.0),
}
BOOLEANS = ["traits.newsletter", "traits.mobile_app"]
LISTS = {
    "tags": ["vip", "beta", "wholesale", "newsletter", "churn-risk", "gift-buyer"],
    "event.properties.product_tags": ["sale", "new", "eco", "limited", "bestseller"],
    "traits.interests": ["running", "hiking", "fashion", "outdoor", "kids"],
}
USER_AGENT = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.1 Safari/605.1.15"
)


# ------------------------------------------------------------------------------------ data
def make_profile(rng: random.Random, index: int) -> Profile:
    orders = rng.randint(0, 40)
    last_order = NOW - timedelta(days=rng.randint(0, 200), hours=rng.randint(0, 23))
    profile = Profile(
        id=f"prof_{index:04d}",
        created_at="2025-02-01T09:00:00.000Z",
        first_seen="2025-02-01T09:00:00.000Z",
        last_seen=(NOW - timedelta(hours=rng.randint(0, 2000))).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        identities={"email": [f"user{index}@example.com"], "user_id": [f"u{index}"]},
        traits={
            "plan": rng.choice(STRINGS["traits.plan"]),
            "country": rng.choice(STRINGS["traits.country"]),
            "email": rng.choice(STRINGS["traits.email"]),
            "signup_source": rng.choice(STRINGS["traits.signup_source"]),
            "age": rng.randint(*INTEGERS["traits.age"]),
            "loyalty_points": rng.randint(*INTEGERS["traits.loyalty_points"]),
            "newsletter": rng.random() < 0.5,
            "mobile_app": rng.random() < 0.5,
            "interests": rng.sample(LISTS["traits.interests"], rng.randint(1, 3)),
            "first_name": rng.choice(["Ada", "Bob", "Chen", "Dee"]),
            "last_name": rng.choice(["Lovelace", "Martin", "Wu", "Okafor"]),
            "city": rng.choice(["Lyon", "Berlin", "Austin", "Leeds", "Sevilla"]),
            "locale": rng.choice(["fr-FR", "de-DE", "en-US", "en-GB", "es-ES"]),
            "company": "Example Ltd",
            "phone_verified": True,
        },
        orders=orders,
        revenue=str(Decimal(rng.randint(0, 800_000)) / 100),
        first_order_at="2025-03-01T10:00:00.000Z" if orders else None,
        last_order_at=last_order.strftime("%Y-%m-%dT%H:%M:%S.000Z") if orders else None,
        tags=sorted(rng.sample(LISTS["tags"], rng.randint(0, 3))),
    )
    names = ("Order Completed", "Product Viewed", "Product Added", "Checkout Started", "$page")
    for name in names:
        days = {(NOW - timedelta(days=d)).strftime("%Y%m%d"): rng.randint(1, 4) for d in rng.sample(range(90), 6)}
        profile.daily_counts[name] = days
        profile.event_counts[name] = sum(days.values()) + rng.randint(0, 30)
    profile.computed = compute(profile, NOW, ComputedTraitSettings())
    # The generated rules read these as plain values; keep them in the pools' ranges.
    profile.computed["value_tier"] = rng.choice(STRINGS["computed.value_tier"])
    profile.computed["lifecycle_stage"] = rng.choice(STRINGS["computed.lifecycle_stage"])
    profile.computed["orders"] = orders
    profile.computed["revenue"] = round(rng.uniform(*FLOATS["computed.revenue"]), 2)
    return profile


def make_event(rng: random.Random, index: int) -> dict[str, Any]:
    """A slim track event of about 1 KB, as the rules function receives it."""
    products = [
        {
            "product_id": f"sku_{rng.randint(1000, 9999)}",
            "name": rng.choice(["Trail runner", "Canvas tote", "Wool beanie", "Rain shell"]),
            "price": round(rng.uniform(5, 200), 2),
            "quantity": rng.randint(1, 3),
            "category": rng.choice(STRINGS["event.properties.category"]),
        }
        for _ in range(rng.randint(1, 3))
    ]
    stamp = (NOW - timedelta(seconds=rng.randint(0, 3600))).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return {
        "type": "track",
        "event": rng.choice(STRINGS["event.name"]),
        "messageId": f"ajs-{index:08d}-6c1f-4b1e-9d0c-2b8a1f3e{index:04d}",
        "timestamp": stamp,
        "userId": f"u{index % PROFILES}",
        "anonymousId": f"anon-{index:06d}-0a5e-4a0b-8b7e-1d2c3b4a5f6e",
        "properties": {
            "order_id": f"ord_{index:06d}",
            "revenue": round(rng.uniform(*FLOATS["event.properties.revenue"]), 2),
            "discount": round(rng.uniform(*FLOATS["event.properties.discount"]), 2),
            "item_count": rng.randint(*INTEGERS["event.properties.item_count"]),
            **{key.rsplit(".", 1)[1]: rng.choice(pool) for key, pool in STRINGS.items() if ".properties." in key},
            "product_tags": rng.sample(LISTS["event.properties.product_tags"], rng.randint(1, 3)),
            "products": products,
        },
        "context": {
            "page": {
                "path": rng.choice(STRINGS["event.context.page.path"]),
                "url": "https://shop.example.com/checkout/done",
                "title": "Thank you for your order",
                "referrer": "https://shop.example.com/cart",
            },
            "campaign": {"source": "newsletter", "medium": "email", "name": "bf-2026"},
            "ip": "203.0.113.9",
            "userAgent": USER_AGENT,
            "locale": "fr-FR",
            "library": {"name": "analytics.js", "version": "5.2.0"},
        },
    }


def activation(profile: Profile, event: dict[str, Any]) -> dict[str, Any]:
    """The one document the other engines read (Midstage reads Facts directly)."""
    return {"event": event, "traits": profile.traits, "computed": profile.computed, "tags": profile.tags}


# ----------------------------------------------------------------------------------- rules
def comparison(rng: random.Random) -> dict[str, Any]:
    kind = rng.choice(["string"] * 5 + ["integer"] * 2 + ["float"] * 2 + ["boolean", "list", "list"])
    if kind == "string":
        path = rng.choice(list(STRINGS))
        pool = STRINGS[path]
        op = rng.choice(["eq", "eq", "ne", "in", "in", "starts_with", "contains"])
        if op in ("eq", "ne"):
            return {"path": path, "op": op, "value": rng.choice(pool)}
        if op == "in":
            return {"path": path, "op": "in", "value": rng.sample(pool, rng.randint(2, max(2, len(pool) - 1)))}
        word = rng.choice(pool)
        if op == "starts_with":
            return {"path": path, "op": op, "value": word[: rng.randint(1, max(1, len(word) - 1))]}
        start = rng.randint(0, len(word) - 2)
        return {"path": path, "op": op, "value": word[start : start + rng.randint(1, 3)]}
    if kind in ("integer", "float"):
        path = rng.choice(list(INTEGERS if kind == "integer" else FLOATS))
        low, high = INTEGERS[path] if kind == "integer" else FLOATS[path]

        def draw() -> Any:
            return rng.randint(low, high) if kind == "integer" else round(rng.uniform(low, high), 1)

        op = rng.choice(["gt", "gte", "lt", "lte", "between"] + (["eq", "in"] if kind == "integer" else []))
        if op == "between":
            return {"path": path, "op": op, "value": sorted([draw(), draw()])}
        if op == "in":
            return {"path": path, "op": op, "value": sorted({draw() for _ in range(6)})}
        return {"path": path, "op": op, "value": draw()}
    if kind == "boolean":
        return {"path": rng.choice(BOOLEANS), "op": "eq", "value": rng.random() < 0.5}
    path = rng.choice(list(LISTS))
    return {"path": path, "op": "contains", "value": rng.choice(LISTS[path])}


def tree(rng: random.Random, leaves: list[dict[str, Any]]) -> dict[str, Any]:
    if len(leaves) == 1:
        node = leaves[0]
    else:
        cut = rng.randint(1, len(leaves) - 1)
        parts = [leaves[:cut], leaves[cut:]] if rng.random() < 0.6 else [[leaf] for leaf in leaves]
        node = {rng.choice(["all", "all", "any"]): [tree(rng, part) for part in parts]}
    return {"not": node} if rng.random() < 0.12 else node


def make_rules(rng: random.Random) -> list[dict[str, Any]]:
    return [tree(rng, [comparison(rng) for _ in range(rng.randint(3, 8))]) for _ in range(RULES)]


# ------------------------------------------------------------------------------ translations
def _segments(path: str) -> list[str]:
    segments = path.split(".")
    return ["event", "event"] if segments == ["event", "name"] else segments  # a track's name is `event`


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    return json.dumps(value) if isinstance(value, str) else repr(value)


def to_rule_engine(node: dict[str, Any]) -> str:
    if "all" in node or "any" in node:
        word = " and " if "all" in node else " or "
        return "(" + word.join(to_rule_engine(n) for n in node.get("all", node.get("any"))) + ")"
    if "not" in node:
        return f"not {to_rule_engine(node['not'])}"
    root, *rest = _segments(node["path"])
    ref = root + "".join(f"[{json.dumps(key)}]" for key in rest)
    return _infix(ref, node["op"], node["value"], "and", "{ref}.starts_with({v})", "{v} in {ref}")


def to_cel(node: dict[str, Any]) -> str:
    if "all" in node or "any" in node:
        word = " && " if "all" in node else " || "
        return "(" + word.join(to_cel(n) for n in node.get("all", node.get("any"))) + ")"
    if "not" in node:
        return f"!{to_cel(node['not'])}"
    ref = ".".join(_segments(node["path"]))
    substring = "{v} in {ref}" if node["path"] in LISTS else "{ref}.contains({v})"
    return _infix(ref, node["op"], node["value"], "&&", "{ref}.startsWith({v})", substring)


def _infix(ref: str, op: str, value: Any, both: str, starts: str, contains: str) -> str:
    """A comparison in the infix syntax rule-engine and CEL share, but for `and`, starts_with, contains."""
    simple = {"eq": "==", "ne": "!=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
    if op in simple:
        return f"({ref} {simple[op]} {_literal(value)})"
    if op == "between":
        return f"({ref} >= {_literal(value[0])} {both} {ref} <= {_literal(value[1])})"
    if op == "in":
        return f"({ref} in {_literal(value)})"
    if op == "starts_with":
        return "(" + starts.format(ref=ref, v=_literal(value)) + ")"
    return "(" + contains.format(ref=ref, v=_literal(value)) + ")"


def to_json_logic(node: dict[str, Any]) -> dict[str, Any]:
    if "all" in node or "any" in node:
        key = "all" if "all" in node else "any"
        return {"and" if key == "all" else "or": [to_json_logic(n) for n in node[key]]}
    if "not" in node:
        return {"!": [to_json_logic(node["not"])]}
    var = {"var": ".".join(_segments(node["path"]))}
    op, value = node["op"], node["value"]
    simple = {"eq": "==", "ne": "!=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
    if op in simple:
        return {simple[op]: [var, value]}
    if op == "between":
        return {"<=": [value[0], var, value[1]]}
    if op == "in":
        return {"in": [var, value]}
    if op == "contains":  # list membership and substring are both `in` in json-logic
        return {"in": [value, var]}
    # json-logic has no starts_with: a string starts with p exactly when p <= s < p-with-its-last-char-bumped.
    upper = value[:-1] + chr(ord(value[-1]) + 1)
    return {"and": [{"<=": [value, var]}, {"<": [var, upper]}]}


# ---------------------------------------------------------------------------------- engines
class Engine:
    def __init__(self, name: str, prepare: Callable[[Profile, dict[str, Any]], Any], rules: list[Callable[[Any], Any]]):
        self.name = name
        self.prepare = prepare  # per event: what every rule of this engine then reads
        self.rules = rules

    def results(self, profile: Profile, event: dict[str, Any]) -> list[bool]:
        data = self.prepare(profile, event)
        return [bool(rule(data)) for rule in self.rules]

    def evaluate_all(self, pairs: list[tuple[Profile, dict[str, Any]]]) -> None:
        rules = self.rules
        for profile, event in pairs:
            data = self.prepare(profile, event)
            for rule in rules:
                rule(data)


def midstage_engine(specs: list[dict[str, Any]]) -> Engine:
    compiled: list[Condition] = [compile_condition(spec) for spec in specs]
    return Engine(
        "midstage",
        lambda profile, event: Facts(profile=profile, event=event, now=NOW),
        [condition.test for condition in compiled],
    )


def rule_engine_engine(specs: list[dict[str, Any]]) -> Engine:
    import rule_engine

    context = rule_engine.Context(resolver=rule_engine.resolve_item)
    rules = [rule_engine.Rule(to_rule_engine(spec), context=context) for spec in specs]
    return Engine(f"rule-engine {metadata.version('rule-engine')}", activation, [rule.matches for rule in rules])


def cel_engine(specs: list[dict[str, Any]]) -> Engine:
    import celpy

    env = celpy.Environment()
    programs = [env.program(env.compile(to_cel(spec))) for spec in specs]

    def prepare(profile: Profile, event: dict[str, Any]) -> Any:
        return {key: celpy.json_to_cel(value) for key, value in activation(profile, event).items()}

    return Engine(f"cel-python {metadata.version('cel-python')}", prepare, [program.evaluate for program in programs])


def json_logic_engine(specs: list[dict[str, Any]]) -> Engine:
    json_logic_rule, note = _json_logic()
    rules = [to_json_logic(spec) for spec in specs]

    def bind(rule: dict[str, Any]) -> Callable[[Any], Any]:
        return lambda data: json_logic_rule(rule, data)

    return Engine(
        f"json-logic-qubit {metadata.version('json-logic-qubit')}{note}", activation, [bind(rule) for rule in rules]
    )


def _json_logic() -> tuple[Callable[[Any, Any], Any], str]:
    import json_logic

    return json_logic.jsonLogic, ""


# ---------------------------------------------------------------------------------- measure
def best_rate(engine: Engine, pairs: list[tuple[Profile, dict[str, Any]]]) -> tuple[float, float, int]:
    """Best and median evaluations per second over REPEATS, and how many evaluations a repeat made."""
    started = time.perf_counter()
    engine.evaluate_all(pairs[:1])
    per_event = max(time.perf_counter() - started, 1e-6)
    count = max(1, min(len(pairs) * 100, round(SECONDS_PER_REPEAT / per_event)))
    work = [pairs[i % len(pairs)] for i in range(count)]
    rates = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        engine.evaluate_all(work)
        rates.append(count * len(engine.rules) / (time.perf_counter() - started))
    return max(rates), statistics.median(rates), count * len(engine.rules)


def main() -> None:
    rng = random.Random(SEED)
    profiles = [make_profile(rng, i) for i in range(PROFILES)]
    events = [make_event(rng, i) for i in range(EVENTS)]
    pairs = [(profiles[i % PROFILES], event) for i, event in enumerate(events)]
    specs = make_rules(rng)
    sizes = [len(json.dumps(event, separators=(",", ":"))) for event in events]
    leaves = sum(json.dumps(spec).count('"path"') for spec in specs)
    print(
        f"   {RULES} rules ({leaves} comparisons, {leaves / RULES:.1f} per rule); {EVENTS} events of "
        f"{min(sizes)}-{max(sizes)} B (mean {statistics.mean(sizes):.0f} B) over {PROFILES} profiles"
    )

    engines: list[Engine] = []
    for build in (midstage_engine, rule_engine_engine, cel_engine, json_logic_engine):
        started = time.perf_counter()
        engine = build(specs)
        compile_us = (time.perf_counter() - started) / RULES * 1e6
        print(f"   compiled {engine.name}: {compile_us:,.0f} µs per rule")
        engines.append(engine)

    # Same answers first: a speed figure of an engine that answers differently means nothing.
    reference = [engines[0].results(profile, event) for profile, event in pairs]
    matched = sum(map(sum, reference))
    print(f"   agreement: {len(pairs)} events x {RULES} rules, {matched} of {len(pairs) * RULES} evaluations match")
    disagreements = []
    for engine in engines[1:]:
        for (profile, event), expected in zip(pairs, reference, strict=True):
            got = engine.results(profile, event)
            for index, (ours, theirs) in enumerate(zip(expected, got, strict=True)):
                if ours != theirs:
                    disagreements.append(f"{engine.name}: rule {index} on {event['messageId']}: {theirs}, ours {ours}")
    if disagreements:
        for line in disagreements[:10]:
            print(f"   DISAGREE {line}")
        raise SystemExit(f"bench_rules: {len(disagreements)} results differ between engines")
    print(f"   all {len(engines)} engines agree on every result")

    print(f"   {'engine':<34} {'evals/s/core (best)':>20} {'median':>12} {'µs/eval':>9} {'Midstage is':>14}")
    ours = 0.0
    for engine in engines:
        best, median, evaluations = best_rate(engine, pairs)
        ours = ours or best
        ratio = "-" if engine is engines[0] else f"x{ours / best:,.1f} faster"
        print(
            f"   {engine.name:<34} {best:>20,.0f} {median:>12,.0f} {1e6 / best:>9.2f} {ratio:>14}"
            f"   ({evaluations:,} evaluations a repeat)"
        )
