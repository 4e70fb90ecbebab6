"""`python -m midstage.cli pinpoint-channels`: what a Pinpoint project's channels ask of the stack.

    aws pinpoint get-channels      --application-id <id> --output json > channels/channels.json
    aws pinpoint get-email-channel --application-id <id> --output json > channels/email.json
    aws pinpoint get-sms-channel   --application-id <id> --output json > channels/sms.json
    aws pinpoint get-apns-channel  --application-id <id> --output json > channels/apns.json
    aws pinpoint get-gcm-channel   --application-id <id> --output json > channels/gcm.json
    python -m midstage.cli pinpoint-channels channels/

Prints, channel by channel, what to create on the AWS side (SES identities, SNS platform
applications, SMS origination identities), the function settings, and what has no counterpart;
then the `sam deploy --parameter-overrides` the plans add up to. Credentials are never in
Pinpoint's answers: the checklist says which one to bring. Exit codes: 0 done, 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Callable
from typing import Any

from midstage.logic.pinpoint.channels import Checklist, read
from midstage.pinpoint_convert_command import input_files


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    command = commands.add_parser(
        "pinpoint-channels", help="a checklist of what a Pinpoint project's channel settings need in the new stack"
    )
    command.add_argument("paths", nargs="+", help="JSON files written by `aws pinpoint get-*-channel`, or folders")


def run(args: argparse.Namespace) -> int:
    documents: list[tuple[str, Any]] = []
    try:
        files = input_files(args.paths)
    except ValueError as error:
        print(f"pinpoint-channels: {error}", file=sys.stderr)
        return 2
    for path in files:
        try:
            documents.append((str(path), json.loads(path.read_text(encoding="utf-8"))))
        except (OSError, UnicodeDecodeError, ValueError) as error:
            documents.append((str(path), f"unreadable: {error}"))
    checklist = read(documents)
    show(checklist, print)
    return 0


def show(checklist: Checklist, echo: Callable[[str], None]) -> None:
    for plan in sorted(checklist.plans.values(), key=lambda p: p.channel):
        state = {True: "enabled", False: "disabled", None: "state unknown"}[plan.enabled]
        echo(f"{plan.channel} ({state} in Pinpoint)")
        for step in plan.steps:
            echo(f"  [ ] {step}")
        for reason in plan.unsupported:
            echo(f"  --  {reason}")
    for problem in checklist.problems:
        echo(f"skipped: {problem}")
    parameters = checklist.parameters()
    if parameters:
        overrides = " ".join(shlex.quote(f"{name}={value}") for name, value in sorted(parameters.items()))
        echo(f"then: sam deploy --parameter-overrides {overrides}")
    settings = {name: value for plan in checklist.plans.values() for name, value in plan.settings.items()}
    for name, value in sorted(settings.items()):
        echo(f"and set {name}={shlex.quote(value)} on the deliver function (docs/operations.md, settings)")
