"""The ``crm-erp-sync`` command: one entry point, one subcommand per job."""

from __future__ import annotations

import argparse
import datetime as dt
import sys

from app.domain.errors import ServiceError
from app.settings import get_settings, local_bootstrap


def _platform(args: argparse.Namespace) -> int:
    from app.platform import local

    s = get_settings()
    if args.brokers is not None:
        s = s.model_copy(
            update={"kafka_brokers": args.brokers, "kafka_bootstrap": local_bootstrap(s.kafka_port, args.brokers)}
        )
    if args.action == "up":
        local.up(s, with_cdc=args.with_cdc)
    elif args.action == "down":
        local.down(s)
    elif args.action == "status":
        return 0 if local.status(s) else 1
    else:
        local.logs(s)
    return 0


def _worker(args: argparse.Namespace) -> int:
    from app.engine.worker import main

    return main(args.loglevel, web=not args.without_web)


def _topics(args: argparse.Namespace) -> int:
    from app.catalog import default_catalog, profile
    from app.ops import topics_admin

    s = get_settings()
    specs = profile(args.profile or s.topic_profile).applied(default_catalog())
    if args.action == "apply":
        refused: list[str] = []
        changes = topics_admin.apply(s, specs, refused=refused)
        print(f"{len(changes)} change(s)" if changes else "catalog and cluster agree; nothing to do")
        if refused:
            print(f"{len(refused)} difference(s) left for an operator (above)")
        return 1 if refused else 0
    drift = topics_admin.check(s, specs)
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


def _sources(args: argparse.Namespace) -> int:
    from app.catalog import default_catalog
    from app.serde.source_schemas import SourceChecker

    verdicts = SourceChecker(get_settings(), latest=args.latest).check(default_catalog())
    for verdict in verdicts:
        print(verdict)
    bad = [v for verdict in verdicts for v in verdict.unreadable]
    judged = sum(len(v.versions) for v in verdicts)
    print(f"{len(bad)} of {judged} writer schema version(s) unreadable" if bad else f"{judged} readable")
    return 1 if bad else 0


def _crm_writer(args: argparse.Namespace) -> int:
    import logging

    from app.ops import crm_writer

    logging.basicConfig(level=args.loglevel.upper(), format="%(asctime)s %(levelname)s %(message)s")
    applied = crm_writer.run(get_settings())
    print(f"crm-writer: {applied} update(s) applied")
    return 0


def _bench(args: argparse.Namespace) -> int:
    from pathlib import Path

    from app.ops import bench

    settings = dict(args.worker_setting)
    only = args.only or bench.RUNS
    bench.run(
        get_settings(),
        args.deals,
        Path(args.out),
        latency_seconds=args.latency_seconds,
        only=only,
        worker_settings=settings,
    )
    return 0


def _api_latency(args: argparse.Namespace) -> int:
    from app.client_config import secret
    from app.ops.api_latency import measure

    s = get_settings()
    url = args.url or f"http://{s.web_host}:{s.web_port}"
    print(measure(url, args.paths, args.requests, secret(s, "web_token")).render())
    return 0


def _bench_runs(text: str) -> tuple[str, ...]:
    from app.ops.bench import RUNS

    runs = tuple(text.split(","))
    if not set(runs) <= set(RUNS):
        raise argparse.ArgumentTypeError(f"choose from {','.join(RUNS)}, got {text!r}")
    return runs


def _setting(item: str) -> tuple[str, str]:
    name, sep, value = item.partition("=")
    if not sep or not name.startswith("CRM_ERP_"):
        raise argparse.ArgumentTypeError(f"--worker-setting wants CRM_ERP_NAME=value, got {item!r}")
    return name, value


def _soak(args: argparse.Namespace) -> int:
    from pathlib import Path

    from app.ops import soak

    steps = [int(n) for n in args.steps.split(",")]
    soak.run(get_settings(), steps, args.retention_s, Path(args.out))
    return 0


def _demo(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from app.ops import demo

    summary = demo.run(get_settings(), args.seconds, args.rate, args.seed, args.keep)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")
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

    from app.engine.reader import ReadError
    from app.ops.reconcile import run
    from app.readmodels.reconcile import render_table

    try:
        report = run(get_settings(), _ms(args.since), _ms(args.until))
    except ReadError as exc:
        print(f"crm-erp-sync reconcile: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(render_table(report), end="")
    return 0


def _trace(args: argparse.Namespace) -> int:
    import json

    from app.engine.reader import ReadError
    from app.ops.trace import run
    from app.readmodels.trace import render

    try:
        entries = run(get_settings(), args.correlation_id, _ms(args.since), verbose=args.verbose)
    except ReadError as exc:
        print(f"crm-erp-sync trace: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps([e.to_json() for e in entries], indent=2))
    else:
        print(render(entries, args.correlation_id), end="")
    return 0


def _operator(name: str | None) -> str:
    import os

    return name or os.environ.get("USER") or "operator"


def _positive(kind: type):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
        return value

    return parse


def _exceptions(args: argparse.Namespace) -> int:
    import json

    from app.engine.reader import ReadError
    from app.ops import exceptions_cli as ops
    from app.readmodels import exception_ledger as ledger

    s = get_settings()
    now_ms = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
    try:
        if args.action == "list":
            entries, bad = ops.list_entries(s, args.reason, args.severity, _ms(args.since), args.open)
            if args.json:
                print(json.dumps([e.to_json(now_ms, raw=args.raw) for e in entries], indent=2))
            else:
                print(ledger.render_table(entries, now_ms), end="")
            if bad:
                print(f"crm-erp-sync exceptions: {bad} ledger value(s) did not parse", file=sys.stderr)
            return 0
        if args.action == "show":
            entry = ops.find(s, args.id)
            if entry is None:
                print(f"crm-erp-sync exceptions show: {args.id!r} is not in the exception ledger", file=sys.stderr)
                return 1
            text = json.dumps(entry.to_json(now_ms, raw=args.raw), indent=2) + "\n" if args.json else None
            print(text or ledger.render_detail(entry, now_ms, raw=args.raw), end="")
            return 0
        operator = _operator(args.operator)
        ops.resolve(s, args.id, operator, args.note)
    except ledger.Refused as exc:
        print(f"crm-erp-sync exceptions {args.action}: refused: {exc}", file=sys.stderr)
        return 1
    except (ReadError, ops.OpsError) as exc:
        print(f"crm-erp-sync exceptions {args.action}: {exc}", file=sys.stderr)
        return 2
    print(f"resolved {args.id} (MANUAL, by {operator}); resolution and audit record produced")
    return 0


def _alerts(args: argparse.Namespace) -> int:
    import json

    from app.engine.reader import ReadError
    from app.ops import alerts_cli as ops
    from app.ops.exceptions_cli import OpsError
    from app.readmodels import alert_ledger as ledger

    s = get_settings()
    try:
        if args.action in ("list", "show"):
            rows, bad = ops.read(s)
            if bad:
                print(f"crm-erp-sync alerts: {bad} ledger value(s) did not parse", file=sys.stderr)
            if args.action == "list":
                chosen = ledger.select(rows, args.open, frozenset(args.kind))
                now_ms = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
                text = json.dumps([r.model_dump(mode="json") for r in chosen], indent=2) + "\n" if args.json else None
                print(text or ledger.render_table(chosen, now_ms), end="")
                return 0
            row = rows.get(args.id)
            if row is None:
                print(f"crm-erp-sync alerts show: {args.id!r} is not in the alert ledger", file=sys.stderr)
                return 1
            print(
                json.dumps(row.model_dump(mode="json"), indent=2) + "\n" if args.json else ledger.render_detail(row),
                end="",
            )
            return 0
        operator = _operator(args.operator)
        action = "ACKNOWLEDGE" if args.action == "ack" else "RESOLVE"
        ops.act(s, args.id, action, operator, args.note)
    except ledger.Refused as exc:
        print(f"crm-erp-sync alerts {args.action}: refused: {exc}", file=sys.stderr)
        return 1
    except (ReadError, OpsError) as exc:
        print(f"crm-erp-sync alerts {args.action}: {exc}", file=sys.stderr)
        return 2
    done = "acknowledged" if args.action == "ack" else "resolved"
    print(f"{done} {args.id} (by {operator}); action and audit record produced")
    return 0


def _ops_screenshot(args: argparse.Namespace) -> int:
    from pathlib import Path

    from app.ops.screenshot import ScreenshotError, take

    s = get_settings()
    host = "127.0.0.1" if s.web_host in ("", "0.0.0.0") else s.web_host
    url = args.url or f"http://{host}:{s.web_port}/ops"
    try:
        out = take(url, Path(args.out), chromium=args.chromium)
    except ScreenshotError as exc:
        print(f"crm-erp-sync ops-screenshot: {exc}", file=sys.stderr)
        return 1
    print(f"{url} -> {out} ({out.stat().st_size} bytes)")
    return 0


def _replay(args: argparse.Namespace) -> int:
    from app.engine.reader import ReadError
    from app.ops import replay as ops
    from app.ops.exceptions_cli import OpsError
    from app.readmodels.replay import Criteria, Origin

    if args.since and args.until and args.since >= args.until:
        print("crm-erp-sync replay: --since must be before --until", file=sys.stderr)
        return 2
    criteria = Criteria(
        reasons=frozenset(args.reason or ()),
        keys=frozenset(args.key or ()),
        ids=frozenset(args.id or ()),
        since_ms=_ms(args.since),
        until_ms=_ms(args.until),
    )
    try:
        result = ops.run(
            get_settings(),
            criteria,
            Origin(args.origin),
            dry_run=args.dry_run,
            rate=args.rate,
            limit=args.max,
            operator=_operator(args.operator),
            include_resolved=args.include_resolved,
        )
    except (ReadError, OpsError) as exc:
        print(f"crm-erp-sync replay: {exc}", file=sys.stderr)
        return 2
    return 0 if result.ok else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="crm-erp-sync", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    plat = sub.add_parser("platform", help="the embedded local Kafka broker and schema registry")
    plat.add_argument("action", choices=["up", "down", "status", "logs"])
    plat.add_argument(
        "--with-cdc",
        action="store_true",
        help="up: also a CRM in PostgreSQL and Kafka Connect running Debezium into the CDC topics",
    )
    plat.add_argument(
        "--brokers",
        type=int,
        choices=range(1, 10),
        metavar="N",
        help="KRaft nodes of the local cluster (default CRM_ERP_KAFKA_BROKERS, 1); 3 for the production profile",
    )
    plat.set_defaults(func=_platform)

    topics = sub.add_parser("topics", help="apply the topic catalog to the cluster, or check it for drift")
    topics.add_argument("action", choices=["apply", "check"])
    topics.add_argument(
        "--profile", help="environment profile in topics/profiles.toml (default: CRM_ERP_TOPIC_PROFILE)"
    )
    topics.set_defaults(func=_topics)

    schemas = sub.add_parser("schemas", help="schema governance against the registry")
    schemas.add_argument("action", choices=["register", "check", "lint", "gate", "compat"])
    schemas.add_argument("files", nargs="*", metavar="OLD.avsc NEW.avsc", help="compat: the two schema files")
    schemas.add_argument("--level", default="BACKWARD", choices=["BACKWARD", "FORWARD", "FULL"], help="compat level")
    schemas.add_argument("--base", help="gate: the commit to compare with (default: merge base / HEAD~1)")
    schemas.set_defaults(func=_schemas)

    sources = sub.add_parser(
        "sources", help="check that every writer schema of the CDC sources can be read into the mappings"
    )
    sources.add_argument("action", choices=["check"])
    sources.add_argument("--latest", type=_positive(int), help="judge only the latest N versions of each subject")
    sources.set_defaults(func=_sources)

    writer = sub.add_parser(
        "crm-writer", help="apply crm.commands.update to a CRM kept in PostgreSQL (the local platform's by default)"
    )
    writer.add_argument("--loglevel", default="info", choices=["debug", "info", "warning", "error"])
    writer.set_defaults(func=_crm_writer)

    demo = sub.add_parser("demo", help="the whole lifecycle locally: simulated CRM and ERP, then a summary")
    demo.add_argument("--seconds", type=float, default=60.0, help="how long the simulated CRM starts new deals")
    demo.add_argument("--rate", type=float, default=40.0, help="CRM messages per second")
    demo.add_argument("--seed", type=int, default=7, help="seed of both simulators (a run is reproducible)")
    demo.add_argument("--keep", action="store_true", help="leave the worker and the run's topics up afterwards")
    demo.add_argument("--json", default="out/demo.json", help="where to write the summary as JSON")
    demo.set_defaults(func=_demo)

    bench = sub.add_parser("bench", help="measure the opportunity-to-order path against its I/O and Python ceilings")
    bench.add_argument("--deals", type=int, default=40000, help="deals to preload (5 CDC events each: 200k)")
    bench.add_argument("--out", default="out/bench.json", help="where to write the figures as JSON")
    bench.add_argument("--latency-seconds", type=float, default=15.0, help="duration of each live latency run")
    bench.add_argument(
        "--only", type=_bench_runs, help="comma-separated runs after the ceilings: f,c1,c2,latency (default: all)"
    )
    bench.add_argument(
        "--worker-setting",
        action="append",
        default=[],
        type=_setting,
        metavar="CRM_ERP_NAME=value",
        help="a setting every worker of the bench gets (repeatable), to measure one lever; recorded in --out",
    )
    bench.set_defaults(func=_bench)

    lat = sub.add_parser("api-latency", help="p50/p99 of the decision-boundary API against a running worker")
    lat.add_argument("paths", nargs="+", help="API paths to ask, e.g. /api/v1/deals/opp-1 /api/v1/accounts/acc-1")
    lat.add_argument("--url", default=None, help="the worker (default: http://<web host>:<web port>)")
    lat.add_argument("--requests", type=int, default=1000, help="requests after the warm-up (default 1000)")
    lat.set_defaults(func=_api_latency)

    soak = sub.add_parser("soak", help="settle many deals with a short retention: worker memory and table keys")
    soak.add_argument("--steps", default="10000,25000,50000", help="cumulative deal counts to measure at")
    soak.add_argument("--retention-s", type=float, default=20.0, help="CRM_ERP_RETENTION_S for the worker")
    soak.add_argument("--out", default="out/soak.json", help="where to write the figures as JSON")
    soak.set_defaults(func=_soak)

    rec = sub.add_parser("reconcile", help="orders matched, only in the CRM or ERP, or mismatched (from deal state)")
    rec.add_argument("--since", type=instant, help="orders commanded at or after this ISO date/datetime (UTC)")
    rec.add_argument("--until", type=instant, help="orders commanded before this ISO date/datetime (exclusive)")
    rec.add_argument("--json", action="store_true", help="print the report as JSON instead of a table")
    rec.set_defaults(func=_reconcile)

    trace = sub.add_parser("trace", help="one deal's history across the service's topics, in time order (audits)")
    trace.add_argument("correlation_id", metavar="correlation-id", help="the CRM opportunity id, e.g. opp-42")
    trace.add_argument("--since", type=instant, help="only events at or after this ISO date/datetime (UTC)")
    trace.add_argument("--json", action="store_true", help="print the events as a JSON list instead of lines")
    trace.add_argument("--verbose", action="store_true", help="also show the deal's re-checks")
    trace.set_defaults(func=_trace)

    exc = sub.add_parser("exceptions", help="the exception ledger: list, show and resolve exceptions")
    exc_sub = exc.add_subparsers(dest="action", required=True)
    exc_list = exc_sub.add_parser("list", help="exceptions in the ledger, oldest first")
    exc_list.add_argument("--reason", help="only this reason code (e.g. MAPPING_ERROR)")
    exc_list.add_argument("--severity", help="only this severity (LOW, MEDIUM, HIGH, CRITICAL)")
    exc_list.add_argument("--since", type=instant, help="only exceptions raised at or after this ISO date/datetime")
    exc_list.add_argument("--open", action="store_true", help="only exceptions not RESOLVED")
    exc_list.add_argument("--json", action="store_true", help="print the list as JSON instead of a table")
    exc_list.add_argument("--raw", action="store_true", help="--json: the original payloads unmasked (personal data)")
    exc_show = exc_sub.add_parser("show", help="one exception's full context")
    exc_show.add_argument("id", help="the exception id")
    exc_show.add_argument("--json", action="store_true", help="print it as JSON")
    exc_show.add_argument("--raw", action="store_true", help="the original key, value and headers unmasked")
    exc_resolve = exc_sub.add_parser("resolve", help="close an open exception by hand (MANUAL), with an audit record")
    exc_resolve.add_argument("id", help="the exception id")
    exc_resolve.add_argument("--note", required=True, help="why it is resolved (no personal data)")
    exc_resolve.add_argument("--operator", help="who resolves it (default: $USER, else 'operator')")
    exc.set_defaults(func=_exceptions)

    alerts = sub.add_parser("alerts", help="the drift alert ledger: list, show, acknowledge and resolve drift alerts")
    alerts_sub = alerts.add_subparsers(dest="action", required=True)
    al_list = alerts_sub.add_parser("list", help="drift alerts in the ledger, oldest first")
    al_list.add_argument("--open", action="store_true", help="only alerts not resolved")
    al_list.add_argument("--kind", action="append", default=[], help="only this kind (repeatable)")
    al_list.add_argument("--json", action="store_true", help="print the rows as JSON")
    al_show = alerts_sub.add_parser("show", help="one alert: what was expected and observed, actions, escalation")
    al_show.add_argument("id", help="the alert id, e.g. opp-42:amount:accepted:1")
    al_show.add_argument("--json", action="store_true", help="print the row as JSON")
    verbs = (
        ("ack", "acknowledge: someone works on it, so it is not escalated"),
        ("resolve", "close it by hand (parity restored outside the pipeline, or accepted)"),
    )
    for verb, text in verbs:
        p = alerts_sub.add_parser(verb, help=text)
        p.add_argument("id", help="the alert id")
        p.add_argument("--note", required=True, help="why: what was found or done (goes to the audit trail)")
        p.add_argument("--operator", help="who acts (default: $USER)")
    alerts.set_defaults(func=_alerts)

    rep = sub.add_parser("replay", help="re-inject quarantined inputs into their source topics, audited and closed")
    rep.add_argument("--reason", action="append", help="only this reason (x-reason / reason_code); repeatable")
    rep.add_argument("--key", action="append", help="only this original key (UTF-8, or an Avro key's id); repeatable")
    rep.add_argument("--id", action="append", help="only this exception id (x-exception-id); repeatable")
    rep.add_argument("--since", type=instant, help="only inputs quarantined at or after this ISO date/datetime")
    rep.add_argument("--until", type=instant, help="only inputs quarantined before this ISO date/datetime")
    rep.add_argument(
        "--from",
        dest="origin",
        choices=["dead-letter", "exceptions"],
        default="dead-letter",
        help="read dead-letter messages (default) or exception records carrying the original value",
    )
    rep.add_argument("--dry-run", action="store_true", help="print what would be re-injected; produce nothing")
    rep.add_argument("--rate", type=_positive(float), default=50.0, help="messages per second (default 50)")
    rep.add_argument("--max", type=_positive(int), help="replay at most this many")
    rep.add_argument("--operator", help="who replays (default: $USER, else 'operator')")
    rep.add_argument(
        "--include-resolved", action="store_true", help="also replay inputs whose exception is already resolved"
    )
    rep.set_defaults(func=_replay)

    shot = sub.add_parser("ops-screenshot", help="save the worker's /ops page as a PNG (headless Chromium)")
    shot.add_argument("--url", help="the page (default: http://127.0.0.1:<CRM_ERP_WEB_PORT>/ops)")
    shot.add_argument("--out", default="out/ops.png", help="where to write the PNG (default out/ops.png)")
    shot.add_argument("--chromium", help="the browser executable (default: chromium on the PATH)")
    shot.set_defaults(func=_ops_screenshot)

    from app.ops.simulate import add_parser as add_simulate  # flags generated from the simulators' configs

    add_simulate(sub, get_settings)

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
    except ServiceError as exc:  # a job that cannot do what it was asked: its message says why
        print(f"crm-erp-sync: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
