"""docs/openapi.yaml stays true: valid OpenAPI 3.1, one operation per route of template.yaml,
examples the code accepts, roles as the admin route table declares them, and only real error codes.

Three route families: tracking (CollectFunction, write keys), admin (AdminFunction, API keys
and roles) and public engagement links (EngagementFunction, no authentication)."""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate as validate_spec
from pydantic import BaseModel
from samtranslator.yaml_helper import yaml_parse

from midstage.admin import route_table
from midstage.config import CollectSettings, IdentitySettings
from midstage.http import DEFAULT_LIMIT, MAX_LIMIT
from midstage.logic import collect
from midstage.logic.analytics.reports import (
    ChannelsSpec,
    FunnelSpec,
    PerformanceSpec,
    RetentionSpec,
    ReviewSpec,
    RoiSpec,
    TrendsSpec,
)
from midstage.logic.tracking_routes import CALLS
from midstage.models.admin import ApiKeyCreate, RoleRank, SecretRotation, Source, SourceCreate, SourceUpdate
from midstage.models.assets import AssetContent, AssetCreate, AssetRejection, AssetReview, AssetVersionRef
from midstage.models.attribution import AnalyzeRequest
from midstage.models.bulk_imports import BulkImportRequest
from midstage.models.campaigns import CampaignBody
from midstage.models.destinations import DestinationCreate, DestinationUpdate
from midstage.models.experiments import AnalyzeRequest as ExperimentAnalyzeRequest
from midstage.models.experiments import ExperimentBody, ExperimentCreate
from midstage.models.experiments import PlanRequest as ExperimentPlanRequest
from midstage.models.journeys import JourneyBody
from midstage.models.messaging import RuleBody, TemplateBody
from midstage.models.offers import CodeUpload, IssueRequest, OfferCreate, OfferPatch
from midstage.models.requests import (
    CampaignCreate,
    ConsentUpdate,
    DryRunRequest,
    EstimateRequest,
    ImportRequest,
    InboxRead,
    JourneyCreate,
    JourneyPatch,
    PreviewRequest,
    RedriveRequest,
    RegulationCreate,
    RuleCreate,
    RulePatch,
    SegmentCreate,
    SendMessage,
    SpendImport,
    SuppressionPut,
    TemplateApproval,
    TemplateCreate,
)
from midstage.models.segments import SegmentBody
from midstage.models.tracking import TrackingEvent
from midstage.services.admin.reports import AttributionReport

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "docs" / "openapi.yaml"
TEMPLATE = ROOT / "template.yaml"
SOURCE_TREES = (ROOT / "shared", ROOT / "functions")
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
# The API's catch-all route (preflights and the 404 of undeclared paths): no operation of its own,
# described in the document's introduction.
DEFAULT_ROUTE = ("any", "$default")
RECEIVED = datetime(2024, 5, 1, 10, 5, 2, tzinfo=UTC)

# Request schemas of the admin API and the pydantic models the handler validates them with.
ADMIN_REQUEST_MODELS: dict[str, type[BaseModel]] = {
    "SourceCreate": SourceCreate,
    "SourceUpdate": SourceUpdate,
    "ApiKeyCreate": ApiKeyCreate,
    "SecretRotation": SecretRotation,
    "RuleCreate": RuleCreate,
    "RuleBody": RuleBody,
    "RulePatch": RulePatch,
    "DryRunRequest": DryRunRequest,
    "TemplateCreate": TemplateCreate,
    "TemplateBody": TemplateBody,
    "TemplateApproval": TemplateApproval,
    "PreviewRequest": PreviewRequest,
    "SendMessage": SendMessage,
    "ConsentUpdate": ConsentUpdate,
    "InboxRead": InboxRead,
    "SuppressionPut": SuppressionPut,
    "RegulationCreate": RegulationCreate,
    "SegmentCreate": SegmentCreate,
    "SegmentBody": SegmentBody,
    "EstimateRequest": EstimateRequest,
    "ImportRequest": ImportRequest,
    "BulkImportRequest": BulkImportRequest,
    "CampaignCreate": CampaignCreate,
    "CampaignBody": CampaignBody,
    "JourneyCreate": JourneyCreate,
    "JourneyBody": JourneyBody,
    "JourneyPatch": JourneyPatch,
    "RedriveRequest": RedriveRequest,
    "SpendImport": SpendImport,
    "FunnelSpec": FunnelSpec,
    "RetentionSpec": RetentionSpec,
    "TrendsSpec": TrendsSpec,
    "ChannelsSpec": ChannelsSpec,
    "PerformanceSpec": PerformanceSpec,
    "ReviewSpec": ReviewSpec,
    "RoiSpec": RoiSpec,
    "AttributionReport": AttributionReport,
    "AnalyzeRequest": AnalyzeRequest,
    "ExperimentAnalyzeRequest": ExperimentAnalyzeRequest,
    "ExperimentPlanRequest": ExperimentPlanRequest,
    "ExperimentCreate": ExperimentCreate,
    "ExperimentBody": ExperimentBody,
    "OfferCreate": OfferCreate,
    "OfferPatch": OfferPatch,
    "CodeUpload": CodeUpload,
    "IssueRequest": IssueRequest,
    "DestinationCreate": DestinationCreate,
    "DestinationUpdate": DestinationUpdate,
    "AssetCreate": AssetCreate,
    "AssetContent": AssetContent,
    "AssetReview": AssetReview,
    "AssetRejection": AssetRejection,
    "AssetVersionRef": AssetVersionRef,
}
# Functions whose routes are public: links inside sent messages, authenticated by a signed token;
# inbound webhooks, authenticated by the provider's signature over the body; the console's static files.
PUBLIC_FUNCTIONS = {"ConsoleFunction", "EngagementFunction", "WebhooksFunction"}


# ---------------------------------------------------------------------------------- loading
@cache
def spec() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(SPEC.read_text(encoding="utf-8"))
    return loaded


@cache
def template_routes() -> dict[tuple[str, str], str]:
    """(method, path) -> logical id of the function, for every HttpApi event in the template."""
    template = yaml_parse(TEMPLATE.read_text(encoding="utf-8"))
    routes: dict[tuple[str, str], str] = {}
    for name, resource in template["Resources"].items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        for event in (resource.get("Properties", {}).get("Events") or {}).values():
            if event.get("Type") != "HttpApi":
                continue
            properties = event.get("Properties") or {}
            key = (str(properties.get("Method", "ANY")).lower(), str(properties.get("Path", "$default")))
            assert key not in routes, f"route {key} is declared twice in template.yaml"
            routes[key] = name
    return routes


def operations() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in spec()["paths"].items():
        for method in HTTP_METHODS:
            if method in item:
                yield method, path, item[method]


def resolve(node: Any) -> Any:
    """Follow a local $ref (to components) until a concrete object is reached."""
    while isinstance(node, dict) and "$ref" in node and set(node) == {"$ref"}:
        reference: str = node["$ref"]
        assert reference.startswith("#/"), f"only local references are used: {reference}"
        node = spec()
        for part in reference[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def media_examples(media: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    if "example" in media:
        yield "example", media["example"]
    for name, example in (media.get("examples") or {}).items():
        example = resolve(example)
        if "value" in example:
            yield name, example["value"]


def as_document(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def collect_route(path: str) -> bool:
    """A path of the tracking API: events (POST) or the settings the SDKs fetch (GET)."""
    return "CollectFunction" in (template_routes().get(("post", path)), template_routes().get(("get", path)))


def call_of(path: str) -> str:
    """The call type a tracking path records, or "batch"."""
    return "batch" if path.endswith("/batch") else CALLS[path.rsplit("/", 1)[-1]]


def public_route(method: str, path: str) -> bool:
    return template_routes().get((method, path)) in PUBLIC_FUNCTIONS


def request_examples(tracking: bool) -> list[Any]:
    cases = []
    for method, path, operation in operations():
        if collect_route(path) != tracking or "requestBody" not in operation or public_route(method, path):
            continue
        for media_type, media in resolve(operation["requestBody"])["content"].items():
            for name, value in media_examples(media):
                cases.append(pytest.param(path, media, value, id=f"{method.upper()} {path} {media_type} {name}"))
    return cases


def all_examples() -> list[Any]:
    cases = []
    for method, path, operation in operations():
        label = f"{method.upper()} {path}"
        if "requestBody" in operation:
            for media_type, media in resolve(operation["requestBody"])["content"].items():
                for name, value in media_examples(media):
                    cases.append(pytest.param(media, value, id=f"{label} request {media_type} {name}"))
        for status, response in operation["responses"].items():
            for media_type, media in (resolve(response).get("content") or {}).items():
                for name, value in media_examples(media):
                    cases.append(pytest.param(media, value, id=f"{label} {status} {media_type} {name}"))
    return cases


def schema_validator(schema: dict[str, Any]) -> Draft202012Validator:
    """A JSON Schema 2020-12 validator for a schema that may refer to #/components/..."""
    return Draft202012Validator({**schema, "components": spec()["components"]})


def schema_name(media: dict[str, Any]) -> str | None:
    reference = media.get("schema", {}).get("$ref", "")
    return reference.rsplit("/", 1)[-1] if reference.startswith("#/components/schemas/") else None


# ---------------------------------------------------------------------------------- (a) valid
def test_the_document_is_valid_openapi_3_1() -> None:
    assert str(spec()["openapi"]).startswith("3.1."), "the document declares OpenAPI 3.1"
    validate_spec(spec())


def test_operation_ids_are_unique() -> None:
    ids = [operation["operationId"] for _, _, operation in operations()]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)


# ---------------------------------------------------------------------------------- (b) routes
def test_documented_routes_are_exactly_the_template_routes() -> None:
    documented = {(method, path) for method, path, _ in operations()}
    declared = set(template_routes()) - {DEFAULT_ROUTE}
    assert template_routes()[DEFAULT_ROUTE] == "CollectFunction"
    assert "`$default` route" in spec()["info"]["description"]
    assert not declared - documented, f"routes in template.yaml without documentation: {sorted(declared - documented)}"
    assert not documented - declared, f"documented routes not in template.yaml: {sorted(documented - declared)}"


def test_path_parameters_are_declared_for_every_templated_path() -> None:
    for method, path, operation in operations():
        names = set(re.findall(r"\{([^}]+)\}", path))
        item_parameters = spec()["paths"][path].get("parameters", [])
        declared = {
            resolve(p)["name"]
            for p in [*item_parameters, *operation.get("parameters", [])]
            if resolve(p)["in"] == "path"
        }
        assert names == declared, f"{method.upper()} {path}: path parameters {declared} != {names}"


def test_each_family_declares_its_authentication() -> None:
    for method, path, operation in operations():
        schemes = {name for requirement in operation.get("security", []) for name in requirement}
        if collect_route(path) and method == "get":
            # The settings the SDKs fetch: the key is in the path or the query, Basic is optional.
            assert schemes <= {"writeKeyBasic"}, f"{method.upper()} {path}"
            assert operation["security"] in ([], [{"writeKeyBasic": []}, {}]), f"{method.upper()} {path}"
            assert "x-minimum-role" not in operation, f"{method.upper()} {path}: a tracking route has no role"
        elif collect_route(path):
            assert schemes == {"writeKeyBasic"}, f"{method.upper()} {path}"
            assert {} in operation["security"], f"{method.upper()} {path}: writeKey in the body is an alternative"
        elif public_route(method, path):
            assert operation.get("security") == [], f"{method.upper()} {path}: public routes declare `security: []`"
            assert "x-minimum-role" not in operation, f"{method.upper()} {path}: a public route has no role"
        else:
            assert schemes == {"apiKeyBearer", "apiKeyHeader"}, f"{method.upper()} {path}"
            assert operation.get("x-minimum-role") in RoleRank.__members__, f"{method.upper()} {path}"


# ---------------------------------------------------------------------------------- roles
def _normalised(path: str) -> str:
    return re.sub(r"<[^>]+>|\{[^}]+\}", "{}", path)


@cache
def handler_roles() -> dict[tuple[str, str], str]:
    """(method, normalised path) -> the least role each admin route declares (midstage.admin)."""
    roles: dict[tuple[str, str], str] = {}
    for route in route_table():
        key = (route.method, _normalised(route.path))
        assert key not in roles, f"{route.method.upper()} {route.path} is declared twice"
        roles[key] = route.role.name
    return roles


def admin_operations() -> set[tuple[str, str]]:
    """(method, normalised path) of every documented operation of the admin API."""
    return {
        (method, _normalised(path))
        for method, path, _ in operations()
        if not collect_route(path) and not public_route(method, path)
    }


def test_every_admin_route_declares_a_role_and_the_document_equals_the_route_table() -> None:
    # Given the admin API's route table, as the routers declare it
    table = route_table()
    # Then each route names one of the roles, by the enum itself (not a string that could drift)
    assert table, "the admin API declares no routes"
    for route in table:
        assert isinstance(route.role, RoleRank), f"{route.method.upper()} {route.path} declares no role"
    # And the documented admin operations are exactly the routes of the table, role for role
    assert set(handler_roles()) == admin_operations()
    for method, path, operation in operations():
        if (method, _normalised(path)) in handler_roles():
            assert operation["x-minimum-role"] == handler_roles()[(method, _normalised(path))], f"{method} {path}"


def test_documented_minimum_roles_are_the_ones_the_handler_enforces() -> None:
    for method, path, operation in operations():
        if collect_route(path) or public_route(method, path):
            continue
        enforced = handler_roles().get((method, _normalised(path)))
        assert enforced is not None, f"{method.upper()} {path} has no route in the admin route table"
        assert operation["x-minimum-role"] == enforced, f"{method.upper()} {path}"


def test_roles_are_documented_in_rank_order() -> None:
    assert spec()["components"]["schemas"]["Role"]["enum"] == [r.name for r in sorted(RoleRank)]


# ---------------------------------------------------------------------------------- examples
def test_every_request_and_response_body_has_an_example() -> None:
    missing = []
    for method, path, operation in operations():
        label = f"{method.upper()} {path}"
        if "requestBody" in operation:
            content = resolve(operation["requestBody"])["content"]
            # Public routes take what browsers and mailbox providers send (forms), not JSON.
            media = list(content.values()) if public_route(method, path) else [content.get("application/json")]
            if not any(m is not None and list(media_examples(m)) for m in media):
                missing.append(f"{label} request")
        for status, response in operation["responses"].items():
            content = resolve(response).get("content") or {}
            if content and not any(list(media_examples(m)) for m in content.values()):
                missing.append(f"{label} {status}")
    assert not missing, missing


@pytest.mark.parametrize(("media", "value"), all_examples())
def test_examples_match_their_documented_schema(media: dict[str, Any], value: Any) -> None:
    # A text or binary body (HTML pages, the GIF) is its own example; JSON may be given as text.
    document = value if resolve(media["schema"]).get("type") == "string" else as_document(value)
    errors = sorted(schema_validator(media["schema"]).iter_errors(document), key=str)
    assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors[:5])


# ---------------------------------------------------------------------------------- (c) tracking
@pytest.mark.parametrize(("path", "media", "value"), request_examples(tracking=True))
def test_tracking_examples_are_valid_tracking_events(path: str, media: dict[str, Any], value: Any) -> None:
    endpoint = call_of(path)
    body = as_document(value)
    events = body["batch"] if endpoint == "batch" else [{**body, "type": endpoint}]
    assert events, "an example batch should hold events"
    for event in events:
        TrackingEvent.model_validate(event)


@pytest.mark.parametrize(("path", "media", "value"), request_examples(tracking=True))
def test_tracking_examples_are_accepted_whole_by_intake(path: str, media: dict[str, Any], value: Any) -> None:
    """Decoding, limits, validation, identifiers and timestamps: what collect does after auth."""
    kind = call_of(path)
    limits = collect.Limits()
    text = value if isinstance(value, str) else json.dumps(value)
    raw = collect.decode_body(
        text,
        is_base64=False,
        content_encoding=None,
        limit=limits.max_batch_bytes if kind == "batch" else limits.max_event_bytes,
    )
    document = collect.read_document(raw, kind, limits)
    meta = collect.RequestMeta("src_5f0c2a9d1e7b", RECEIVED, "203.0.113.7", "curl/8.5.0")
    result = collect.intake(document, meta, IdentitySettings(), limits)
    assert not result.rejected, [r.to_body() for r in result.rejected]
    assert len(result.accepted) == len(document.items)


@pytest.mark.parametrize(("path", "media", "value"), request_examples(tracking=False))
def test_admin_request_examples_pass_the_handler_models(path: str, media: dict[str, Any], value: Any) -> None:
    name = schema_name(media)
    assert name in ADMIN_REQUEST_MODELS, f"{path}: request schema {name} has no model in this test"
    ADMIN_REQUEST_MODELS[name].model_validate(value)


def test_source_examples_are_sources() -> None:
    for _, _, operation in operations():
        for response in operation["responses"].values():
            media = (resolve(response).get("content") or {}).get("application/json", {})
            name = schema_name(media)
            for _, value in media_examples(media):
                for source in [value] if name == "Source" else value["sources"] if name == "SourceList" else []:
                    # As the API shows a source: the signing secret only in the answer that created it
                    shown = Source.model_validate(source).public()
                    if "signing_secret" in source:
                        shown["signing_secret"] = source["signing_secret"]
                    assert shown == source


def test_documented_limits_are_the_code_defaults() -> None:
    schemas = spec()["components"]["schemas"]
    limits = collect.Limits()
    settings = CollectSettings.model_fields
    assert schemas["Batch"]["properties"]["batch"]["maxItems"] == limits.max_batch_events
    assert settings["max_batch_events"].default == limits.max_batch_events
    assert settings["max_event_bytes"].default == limits.max_event_bytes == 32 * 1024
    assert settings["max_batch_bytes"].default == limits.max_batch_bytes == 500 * 1024
    limit = spec()["components"]["parameters"]["Limit"]["schema"]
    assert limit["default"] == DEFAULT_LIMIT
    assert limit["maximum"] == MAX_LIMIT


# ---------------------------------------------------------------------------------- (d) codes
def documented_codes() -> set[str]:
    schemas = spec()["components"]["schemas"]
    codes = {entry["const"] for name in ("ErrorCode", "RejectionCode") for entry in schemas[name]["oneOf"]}
    for option in schemas["QuarantineEntry"]["properties"]["code"]["anyOf"]:
        codes.update(option.get("enum", []))
    return codes


@cache
def source_codes() -> tuple[frozenset[str], frozenset[str]]:
    """Codes the code base can produce: (explicit at a raise or answer, error-class defaults)."""
    explicit: set[str] = set()
    defaults: set[str] = set()

    def text(node: ast.AST | None) -> str | None:
        return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None

    for tree_root in SOURCE_TREES:
        for path in sorted(tree_root.rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
                if isinstance(node, ast.Call):
                    explicit.update(c for k in node.keywords if k.arg == "code" and (c := text(k.value)))
                    callee = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
                    if callee == "Rejection" and len(node.args) >= 2 and (c := text(node.args[1])):
                        explicit.add(c)
                elif isinstance(node, ast.Dict):
                    explicit.update(
                        c for k, v in zip(node.keys, node.values, strict=True) if text(k) == "code" and (c := text(v))
                    )
                elif isinstance(node, ast.ClassDef):
                    for statement in node.body:
                        if (
                            isinstance(statement, ast.Assign)
                            and any(isinstance(t, ast.Name) and t.id == "code" for t in statement.targets)
                            and (c := text(statement.value))
                        ):
                            defaults.add(c)
    return frozenset(explicit), frozenset(defaults)


def test_every_documented_error_code_exists_in_the_code() -> None:
    explicit, defaults = source_codes()
    invented = documented_codes() - explicit - defaults
    assert not invented, f"documented codes that nothing in shared/ or functions/ produces: {sorted(invented)}"


def test_every_error_code_given_in_the_code_is_documented() -> None:
    explicit, _ = source_codes()
    undocumented = explicit - documented_codes()
    assert not undocumented, f"codes raised in the code but missing from docs/openapi.yaml: {sorted(undocumented)}"
