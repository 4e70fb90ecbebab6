"""python -m infra.localcloud run | invoke | outbox | ses-event — the local cloud from a terminal.

    run        start the local cloud (moto + functions + HTTP API) and keep it up until Ctrl-C
    invoke     run one function with one sample event, like `sam local invoke -e`, without Docker
    outbox     print the emails, SMS and push notifications a running local cloud has sent
    ses-event  make SES report a bounce, complaint, delivery, open... of a sent email

The commands import what they need when they run, so that `--help` answers at once.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import sys
import threading
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from infra.localcloud.cloud import LocalCloud
    from infra.localcloud.deploy import AwsClients
    from infra.localcloud.model import CloudModel

DEFAULT_TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"
DEFAULT_PORT = 3000  # the port `sam local start-api` uses


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.localcloud", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="start the local cloud until Ctrl-C")
    run.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"HTTP API port (default {DEFAULT_PORT})")
    run.add_argument("--template", type=Path, default=DEFAULT_TEMPLATE)
    run.add_argument("--verbose", action="store_true", help="print the functions' output, prefixed by name")
    run.add_argument(
        "--manual-clock", action="store_true", help="schedules fire only on POST /_localcloud/clock/advance"
    )
    run.add_argument("--stack-name", default="midstage-local")
    run.add_argument("--parameter", action="append", default=[], metavar="NAME=VALUE", help="template parameter")
    run.add_argument("--no-demo", action="store_true", help="do not create the demo source")
    run.add_argument("--fresh", action="store_true", help="start empty: discard the state kept in .localcloud/store")
    run.add_argument(
        "--no-persist", action="store_true", help="keep the state in memory only (nothing read or written)"
    )
    run.add_argument(
        "--state-dir", type=Path, help="where the state is kept (default: .localcloud/store beside the template)"
    )
    run.add_argument(
        "--ses-identity",
        action="append",
        default=[],
        metavar="ADDRESS_OR_DOMAIN",
        help="verify this SES identity too (one verified outside the stack on AWS)",
    )
    run.add_argument(
        "--faults",
        metavar="SPEC",
        help="inject faults, e.g. kill=0.05,aws_error=0.02,throttle=0.02,duplicate=0.05,schedule_twice=0.1,seed=7 "
        "(default: $MIDSTAGE_FAULTS; see docs/local-cloud.md)",
    )

    invoke = commands.add_parser("invoke", help="run one function with one event")
    invoke.add_argument("function", help="logical id (CollectFunction) or short name (collect, profile_updater)")
    invoke.add_argument("--event", type=Path, help="JSON event file, e.g. events/collect/track.json ({} if absent)")
    invoke.add_argument("--template", type=Path, default=DEFAULT_TEMPLATE)
    invoke.add_argument("--parameter", action="append", default=[], metavar="NAME=VALUE", help="template parameter")

    outbox = commands.add_parser("outbox", help="print what a running local cloud has sent")
    outbox.add_argument("--url", help=f"the cloud's HTTP API (default: the running one, else port {DEFAULT_PORT})")
    outbox.add_argument("--template", type=Path, default=DEFAULT_TEMPLATE, help="finds the running cloud")
    outbox.add_argument("--json", action="store_true", help="print the JSON answer as it is")

    ses_event = commands.add_parser("ses-event", help="publish an SES sending event for a sent email")
    ses_event.add_argument("event_type", help="Bounce, Complaint, Delivery, Open, Click, Reject, Send, ...")
    ses_event.add_argument("message_id", help="the SES message id (see `outbox`)")
    ses_event.add_argument("--recipient", help="one recipient (default: every recipient of the message)")
    ses_event.add_argument(
        "--detail", action="append", default=[], metavar="NAME=VALUE", help="e.g. bounce_type=Transient"
    )
    ses_event.add_argument("--configuration-set", help="for a message this cloud did not send")
    ses_event.add_argument(
        "--tag", action="append", default=[], metavar="NAME=VALUE", help="for a message this cloud did not send"
    )
    ses_event.add_argument("--url", help=f"the cloud's HTTP API (default: the running one, else port {DEFAULT_PORT})")
    ses_event.add_argument("--template", type=Path, default=DEFAULT_TEMPLATE, help="finds the running cloud")

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    commands_by_name = {"run": _run, "invoke": _invoke, "outbox": _outbox, "ses-event": _ses_event}
    return commands_by_name[args.command](args)


# Webhooks to localhost are how one tries them on a laptop; on AWS they stay refused.
LOCAL_FUNCTION_ENV = {"WEBHOOK_ALLOW_LOCAL": "true"}


def _local_defaults(template: Path) -> dict[str, str]:
    """For the platform's own template: a rule or template just saved acts on the next event
    locally, not 30 s later. Other templates may not declare the parameter."""
    return {"ConfigCacheSeconds": "1"} if Path(template).resolve() == DEFAULT_TEMPLATE.resolve() else {}


def _parameters(pairs: list[str]) -> dict[str, str]:
    parameters = {}
    for pair in pairs:
        name, separator, value = pair.partition("=")
        if not separator:
            raise SystemExit(f"--parameter takes NAME=VALUE, not {pair!r}")
        parameters[name] = value
    return parameters


# ---------------------------------------------------------------------------------- run


def _run(args: argparse.Namespace) -> int:
    from infra.localcloud.cloud import LocalCloud
    from infra.localcloud.faults import Faults, FaultSpecError
    from infra.localcloud.template import TemplateError

    try:
        faults = Faults.parse(args.faults) if args.faults is not None else Faults.from_environment()
    except FaultSpecError as error:
        print(f"cannot read the fault setting: {error}", file=sys.stderr)
        return 2
    stopping = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    # The functions' logs of this run stay next to the template after the cloud stops.
    logs = _state_path(args.template).parent / "logs"
    shutil.rmtree(logs, ignore_errors=True)
    cloud = LocalCloud(
        args.template,
        parameters={**_local_defaults(args.template), **_parameters(args.parameter)},
        function_env=LOCAL_FUNCTION_ENV,
        stack_name=args.stack_name,
        port=args.port,
        manual_clock=args.manual_clock,
        verbose=args.verbose,
        log_dir=logs,
        ses_identities=args.ses_identity,
        state_dir=None if args.no_persist else (args.state_dir or _store_path(args.template)),
        fresh=args.fresh,
        faults=faults,
    )
    try:
        cloud.start()
    except TemplateError as error:
        print(error, file=sys.stderr)
        return 2
    except OSError as error:
        print(f"cannot start the local cloud: {error} (is port {args.port} in use? try --port)", file=sys.stderr)
        return 2
    state = _state_path(args.template)
    try:
        _verify_template_sender(cloud.model.parameters, cloud.client("sesv2"))
        _write_state(state, cloud)
        print(_banner(cloud), flush=True)
        if not args.no_demo:
            _bootstrap_demo(cloud)
        print("Ready. Ctrl-C stops the local cloud.", flush=True)
        stopping.wait()
    finally:
        state.unlink(missing_ok=True)
        print("Stopping the local cloud...", flush=True)
        cloud.stop()
    return 0


def _verify_template_sender(parameters: dict[str, str], sesv2: Any) -> None:
    """Verify the sender Midstage's template names in its EmailSender parameter.

    On AWS the sender (or its domain) is verified outside the stack; locally it is verified here so
    that the functions can send from it at once.
    """
    sender = parameters.get("EmailSender")
    if sender:
        sesv2.create_email_identity(EmailIdentity=sender)


def _bootstrap_demo(cloud: LocalCloud) -> None:
    from infra.localcloud.demo import bootstrap

    try:
        bootstrap(cloud, library=True)
    except Exception:
        # The cloud stays useful without the demo data; say what went wrong and keep serving.
        logging.getLogger("infra.localcloud").exception("creating the demo source failed")


def _console_line(cloud: LocalCloud) -> list[str]:
    """Where the marketers' console opens, when the template serves one (ConsoleFunction)."""
    served = any(route.path == "/console" for api in cloud.model.http_apis for route in api.routes)
    return [f"  console        {cloud.api_url}/console   (sign in with an admin API key)"] if served else []


def _banner(cloud: LocalCloud) -> str:
    model = cloud.model
    if cloud.state_dir is None:
        kept = "State is in memory only: it is gone when the cloud stops."
    elif cloud.restored:
        counts = cloud.restored
        kept = (
            f"State restored from {_shown(cloud.state_dir)}: {counts['items']:,} items, {counts['messages']:,} "
            f"queued messages, {counts['objects']:,} objects (--fresh starts empty)."
        )
    else:
        kept = f"State is kept in {_shown(cloud.state_dir)} across restarts (--fresh starts empty)."
    lines = [
        f"Midstage local cloud. {kept}",
        f"  HTTP API       {cloud.api_url}",
        *_console_line(cloud),
        f"  AWS endpoint   {cloud.aws_endpoint_url}   (AWS_ENDPOINT_URL for boto3 and the aws CLI)",
        f"  clock          {'manual (POST /_localcloud/clock/advance)' if cloud.manual_clock else 'wall time'}",
        f"  faults         {cloud.faults.settings.describe()}"
        + ("   (counts: GET /_localcloud/faults)" if cloud.faults.enabled else ""),
        "  functions",
    ]
    for function in model.functions.values():
        lines.append(f"    {function.logical_id:<28} {function.code_dir.name:<18} {function.handler}")
    for api in model.http_apis:
        lines.append(f"  routes of {api.logical_id}")
        for route in sorted(api.routes, key=lambda r: (r.path, r.method)):
            lines.append(f"    {route.method:<7} {route.path:<40} -> {route.function_id}")
    for mapping in model.queue_mappings:
        queue = mapping.queue_arn.rsplit(":", 1)[-1]
        lines.append(f"  queue {queue} -> {mapping.function_id} (batch {mapping.batch_size})")
    for rule in model.rules:
        lines.append(f"  rule {rule.logical_id} on bus {rule.bus_name} -> {len(rule.targets)} target(s)")
    cloud.clock.refresh()  # schedules created through the Scheduler API since the cloud started
    for job in cloud.clock.jobs():
        created = " (created at runtime)" if job.origin == "runtime" else ""
        lines.append(f"  schedule {job.name} {job.expression}{created}")
    for subscription in model.subscriptions:
        topic, queue = (arn.rsplit(":", 1)[-1] for arn in (subscription.topic_arn, subscription.endpoint))
        raw = " (raw)" if subscription.raw_message_delivery else ""
        lines.append(f"  topic {topic} -> queue {queue}{raw}")
    for destination in model.ses_event_destinations:
        topic = destination.topic_arn.rsplit(":", 1)[-1]
        state = "" if destination.enabled else " (disabled)"
        lines.append(f"  SES set {destination.configuration_set}: events -> topic {topic}{state}")
    if model.ses_configuration_sets or model.ses_identities:
        lines.append("  outbox         python -m infra.localcloud outbox  (sent email, SMS, push)")
    if not cloud.verbose and model.functions:
        lines.append(f"  function logs  {cloud.log_path(next(iter(model.functions))).parent}  (or run with --verbose)")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------- state file


def _state_path(template: Path) -> Path:
    return template.resolve().parent / ".localcloud" / "state.json"


def _store_path(template: Path) -> Path:
    return template.resolve().parent / ".localcloud" / "store"


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _write_state(path: Path, cloud: LocalCloud) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "pid": os.getpid(),
        "apiUrl": cloud.api_url,
        "awsEndpointUrl": cloud.aws_endpoint_url,
        "template": str(cloud.template),
        "stackName": cloud.stack_name,
        "region": cloud.region,
        "parameters": cloud.parameters,
        "startedAt": datetime.now(UTC).isoformat(),
    }
    path.write_text(json.dumps(state, indent=2), encoding="utf-8")


def _running_cloud_state(template: Path) -> dict[str, Any] | None:
    """The state of a local cloud running from `template`, if its process answers."""
    try:
        state: dict[str, Any] = json.loads(_state_path(template).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if state.get("template") != str(template.resolve()):
        return None
    try:
        os.kill(int(state["pid"]), 0)
        health = f"{state['apiUrl']}/_localcloud/health"
        with urllib.request.urlopen(health, timeout=2) as response:  # noqa: S310 - a URL we wrote
            response.read()
    except (OSError, ValueError, KeyError):
        return None
    return state


# ---------------------------------------------------------------------------------- outbox, ses-event


def _cloud_url(args: argparse.Namespace) -> str:
    if args.url:
        return str(args.url).rstrip("/")
    state = _running_cloud_state(args.template)
    return str(state["apiUrl"]) if state is not None else f"http://127.0.0.1:{DEFAULT_PORT}"


def _control_request(url: str, method: str, body: Any = None) -> tuple[int, Any]:
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"{url} is not an http(s) URL")
    data = None if body is None else json.dumps(body).encode()
    headers = {"content-type": "application/json"}
    request = urllib.request.Request(url, data=data, method=method, headers=headers)  # noqa: S310 - checked above
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - checked above
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def _outbox(args: argparse.Namespace) -> int:
    from infra.localcloud.outbox import format_outbox

    url = _cloud_url(args)
    try:
        status, answer = _control_request(f"{url}/_localcloud/outbox", "GET")
    except (OSError, ValueError) as error:
        print(f"no local cloud answers at {url}: {error} (start one with `make run`, or pass --url)", file=sys.stderr)
        return 2
    if status != 200:
        print(f"{url} answered {status}: {answer}", file=sys.stderr)
        return 1
    print(json.dumps(answer, indent=2) if args.json else format_outbox(answer))
    return 0


def _ses_event(args: argparse.Namespace) -> int:
    url = _cloud_url(args)
    body = {
        "eventType": args.event_type,
        "messageId": args.message_id,
        "recipient": args.recipient,
        "details": _parameters(args.detail),
        "configurationSet": args.configuration_set,
        "tags": _parameters(args.tag) or None,
    }
    try:
        status, answer = _control_request(f"{url}/_localcloud/ses-events", "POST", body)
    except (OSError, ValueError) as error:
        print(f"no local cloud answers at {url}: {error} (start one with `make run`, or pass --url)", file=sys.stderr)
        return 2
    if status != 200:
        print(answer.get("message", answer) if isinstance(answer, dict) else answer, file=sys.stderr)
        return 1
    published = answer["published"]
    if not published:
        print("no enabled event destination of the message's configuration set takes this event type")
    else:
        print(f"published {len(published)} notification(s): {', '.join(published)}")
    return 0


# ---------------------------------------------------------------------------------- invoke


def _invoke(args: argparse.Namespace) -> int:
    from infra.localcloud.cloud import invoke_ephemeral, invoke_with_endpoint, resolve_function
    from infra.localcloud.template import TemplateError, load_model

    try:
        event = json.loads(args.event.read_text(encoding="utf-8")) if args.event else {}
    except (OSError, ValueError) as error:
        hint = _missing_sample_hint(args.event) if isinstance(error, FileNotFoundError) else None
        print(hint or f"cannot read the event {args.event}: {error}", file=sys.stderr)
        return 2
    state = _running_cloud_state(args.template)
    try:
        if state is not None:
            parameters = {**state["parameters"], **_parameters(args.parameter)}
            model = load_model(
                args.template, stack_name=state["stackName"], region=state["region"], parameters=parameters
            )
        else:
            model = load_model(args.template, parameters=_parameters(args.parameter))
        function = resolve_function(model, args.function)
    except (TemplateError, LookupError) as error:
        print(error, file=sys.stderr)
        return 2
    if state is not None:
        print(
            f"Invoking {function.logical_id} against the running local cloud ({state['awsEndpointUrl']})",
            file=sys.stderr,
        )
        result = invoke_with_endpoint(
            model, function, event, aws_endpoint_url=state["awsEndpointUrl"], console=sys.stderr
        )
    else:
        print(f"Invoking {function.logical_id} against a fresh in-memory cloud", file=sys.stderr)
        result = invoke_ephemeral(
            model,
            function,
            event,
            console=sys.stderr,
            prepare=lambda clients: _prepare_ephemeral(model, clients),
        )
    print(json.dumps(result.payload if result.ok else result.error, indent=2))
    return 0 if result.ok else 1


def _missing_sample_hint(path: Path) -> str | None:
    """For events/<function>/<case>.json that does not exist (`make invoke FN=... EVENT=...`):
    the cases that function has, or the functions that have samples."""
    if path.parent.name == "events":  # events/<case>.json: no function named
        events, function = path.parent, ""
    elif path.parent.parent.name == "events":
        events, function = path.parent.parent, path.parent.name
    else:
        return None
    if not events.is_dir():
        return None
    functions = ", ".join(sorted(child.name for child in events.iterdir() if any(child.glob("*.json"))))
    if not function:
        return f"no function named; functions with samples: {functions}"
    folder = events / function
    if not folder.is_dir():
        return f"no samples for a function {function!r}; functions with samples: {functions}"
    cases = ", ".join(sorted(sample.stem for sample in folder.glob("*.json"))) or "(none)"
    asked = f"no sample {path.stem!r} for {function}" if path.name != ".json" else "no sample named"
    return f"{asked}; {function}'s samples: {cases}"


def _prepare_ephemeral(model: CloudModel, clients: AwsClients) -> None:
    from infra.localcloud.demo import seed

    _verify_template_sender(model.parameters, clients.sesv2())
    # Midstage's own template gets the demo source, so the samples in events/ authenticate.
    if "ConfigTableName" in model.outputs:
        seed(model.outputs["ConfigTableName"], clients.dynamodb())


if __name__ == "__main__":
    sys.exit(main())
