"""Operator commands against a deployed stack (or the local cloud, via AWS_ENDPOINT_URL).

    python -m midstage.cli create-api-key --table <ConfigTableName> --name ops --role admin
    python -m midstage.cli create-source  --table <ConfigTableName> --name "Web"

The first admin key has to come from here: the admin API itself needs a key.
"""

from __future__ import annotations

import argparse
import json
import sys

from midstage.adapters.config_store import ConfigStore, new_write_key
from midstage.models.admin import Source


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m midstage.cli")
    commands = parser.add_subparsers(dest="command", required=True)
    key = commands.add_parser("create-api-key", help="create an admin API key and print its secret once")
    key.add_argument("--table", required=True, help="the stack's ConfigTableName output")
    key.add_argument("--name", required=True)
    key.add_argument("--role", required=True, choices=["viewer", "marketer", "data_operator", "admin"])
    source = commands.add_parser("create-source", help="create a tracking source and print its write key")
    source.add_argument("--table", required=True)
    source.add_argument("--name", required=True)
    args = parser.parse_args(argv)

    store = ConfigStore(args.table)
    if args.command == "create-api-key":
        api_key, secret = store.create_api_key(args.name, args.role)
        print(json.dumps({**api_key.model_dump(exclude={"digest"}), "secret": secret}, indent=2))
    else:
        created = store.create_source(Source(name=args.name, write_key=new_write_key()))
        print(json.dumps(created.model_dump(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
