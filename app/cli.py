"""The ``crm-erp-sync`` command: one entry point, one subcommand per job."""

from __future__ import annotations

import argparse
import datetime as dt
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

    s = get_settings()
    if args.action == "register":
        from app.ops import schemas_admin

        changed = schemas_admin.register(s, default_catalog(), default_index())
        print(f"{len(changed)} subject(s) changed" if changed else "every subject is registered; nothing to do")
        return 0
    if args.action == "check":
        from app.ops import schemas_admin

        results = schemas_admin.check(s, default_catalog(), default_index())
        for r in results:
            print(r)
        bad = [r for r in results if not r.compatible]
        print(f"{len(bad)} of {len(results)} subject(s) incompatible" if bad else f"{len(results)} subjects compatible")
        return 1 if bad else 0
    if args.action == "lint":
        from app.contracts.lint import lint

        violations = lint(default_index())
        for v in violations:
            print(v)
        print(f"{len(violations)} violation(s)" if violations else f"{len(default_index().raw)} contracts clean")
        return 1 if violations else 0
    if args.action == "gate":
        from app.ops.contract_gate import default_base, gate, index_at

        base = args.base or default_base()
        old = index_at(base) if base else None
        if old is None:
            print(f"no committed contracts at {base or 'any base'}; nothing to compare")
            return 0
        results = gate(old, default_index(), default_catalog())
        for r in results:
            print(f"{r.contract} ({r.level}): {'compatible' if not r.problems else 'INCOMPATIBLE'}")
            for problem in r.problems:
                print(f"    {problem}")
        bad = [r for r in results if r.problems]
        print(f"{len(results)} contract(s) changed since {base[:12]}, {len(bad)} incompatible")
        return 1 if bad else 0
    return _schemas_compat(args)


def _schemas_compat(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from app.contracts import compat, default_index

    old, new = (default_index().expand_schema(json.loads(Path(f).read_text())) for f in args.files)
    problems = compat.check(old, new, args.level)
    for problem in problems:
        print(problem)
    print(f"{args.level}: {'incompatible' if problems else 'compatible'}")
    return 1 if problems else 0


def _bench(args: argparse.Namespace) -> int:
    from pathlib import Path

    from app.ops import bench

    bench.run(get_settings(), args.deals, Path(args.out), latency_seconds=args.latency_seconds)
    return 0


def instant(text: str) -> dt.datetime:
    """An ISO-8601 date or datetime; a date means its midnight, and no offset means UTC."""
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO-8601 date or datetime: {text!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _ms(value: dt.datetime | None) -> int | None:
    return None if value is None else int(value.timestamp() * 1000)


def _reconcile(args: argparse.Namespace) -> int:
    import json

    from app.domain.reconcile import render_table
    from app.ops.reconcile import ReconcileError, run

    try:
        report = run(get_settings(), _ms(args.since), _ms(args.until))
    except ReconcileError as exc:
        print(f"crm-erp-sync reconcile: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(render_table(report), end="")
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
    schemas.add_argument("action", choices=["register", "check", "lint", "gate", "compat"])
    schemas.add_argument("files", nargs="*", metavar="OLD.avsc NEW.avsc", help="compat: the two schema files")
    schemas.add_argument("--level", default="BACKWARD", choices=["BACKWARD", "FORWARD", "FULL"], help="compat level")
    schemas.add_argument("--base", help="gate: the commit to compare with (default: merge base / HEAD~1)")
    schemas.set_defaults(func=_schemas)

    bench = sub.add_parser("bench", help="measure the opportunity-to-order path against its I/O and Python ceilings")
    bench.add_argument("--deals", type=int, default=20000, help="deals to preload (5 CDC events each)")
    bench.add_argument("--out", default="out/bench.json", help="where to write the figures as JSON")
    bench.add_argument("--latency-seconds", type=float, default=15.0, help="duration of each live latency run")
    bench.set_defaults(func=_bench)

    rec = sub.add_parser("reconcile", help="orders matched, only in the CRM or ERP, or mismatched (from deal state)")
    rec.add_argument("--since", type=instant, help="orders commanded at or after this ISO date/datetime (UTC)")
    rec.add_argument("--until", type=instant, help="orders commanded before this ISO date/datetime (exclusive)")
    rec.add_argument("--json", action="store_true", help="print the report as JSON instead of a table")
    rec.set_defaults(func=_reconcile)

    worker = sub.add_parser("worker", help="run the Faust stream-processing worker")
    worker.add_argument("--loglevel", default="info")
    worker.add_argument("--without-web", action="store_true", help="do not start the HTTP server")
    worker.set_defaults(func=_worker)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "schemas" and (args.action == "compat") != bool(args.files):
        parser.error("schemas compat takes OLD.avsc NEW.avsc; other schemas actions take no files")
    if args.command == "schemas" and args.action == "compat" and len(args.files) != 2:
        parser.error("schemas compat takes exactly two files: OLD.avsc NEW.avsc")
    if args.command == "reconcile" and args.since and args.until and args.since >= args.until:
        parser.error("reconcile: --since must be before --until")
    try:
        return args.func(args)
    except PlatformError as exc:
        print(f"crm-erp-sync: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
