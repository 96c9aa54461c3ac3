"""The ``crm-erp-sync`` command: one entry point, one subcommand per job."""

from __future__ import annotations

import argparse
import sys

from app.platform.errors import PlatformError
from app.settings import get_settings


def _platform(args: argparse.Namespace) -> int:
    from app.platform import local

    s = get_settings()
    if args.action == "up":
        local.up(s)
    elif args.action == "down":
        local.down(s)
    elif args.action == "status":
        return 0 if local.status(s) else 1
    else:
        local.logs(s)
    return 0


def _worker(args: argparse.Namespace) -> int:
    from app.faust_app import run_worker

    return run_worker(args.loglevel, web=not args.without_web)


def _topics(args: argparse.Namespace) -> int:
    from app.catalog import default_catalog
    from app.ops import topics_admin

    s = get_settings()
    if args.action == "apply":
        changes = topics_admin.apply(s, default_catalog())
        print(f"{len(changes)} change(s)" if changes else "catalog and cluster agree; nothing to do")
        return 0
    drift = topics_admin.check(s, default_catalog())
    for d in drift:
        print(d)
    print(f"{len(drift)} difference(s)" if drift else "catalog and cluster agree")
    return 1 if drift else 0


def _schemas(args: argparse.Namespace) -> int:
    from app.catalog import default_catalog
    from app.contracts import default_index
    from app.ops import schemas_admin

    s = get_settings()
    changed = schemas_admin.register(s, default_catalog(), default_index())
    print(f"{len(changed)} subject(s) registered" if changed else "every subject is registered; nothing to do")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="crm-erp-sync", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    plat = sub.add_parser("platform", help="the embedded local Kafka broker and schema registry")
    plat.add_argument("action", choices=["up", "down", "status", "logs"])
    plat.set_defaults(func=_platform)

    topics = sub.add_parser("topics", help="apply the topic catalog to the cluster, or check it for drift")
    topics.add_argument("action", choices=["apply", "check"])
    topics.set_defaults(func=_topics)

    schemas = sub.add_parser("schemas", help="schema governance against the registry")
    schemas.add_argument("action", choices=["register"])
    schemas.set_defaults(func=_schemas)

    worker = sub.add_parser("worker", help="run the Faust stream-processing worker")
    worker.add_argument("--loglevel", default="info")
    worker.add_argument("--without-web", action="store_true", help="do not start the HTTP server")
    worker.set_defaults(func=_worker)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except PlatformError as exc:
        print(f"crm-erp-sync: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
