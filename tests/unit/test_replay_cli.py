"""``replay`` / ``exceptions`` without a broker: arguments, exit codes, pacing and delivery failures."""

from __future__ import annotations

import pytest

from app import cli
from app.engine.routes import route
from app.ops import exceptions_cli, replay
from app.readmodels import replay as R
from app.readmodels.exception_ledger import Refused

SRC = "crm.public.opportunity"


def test_replay_arguments_repeat_and_default():
    args = cli.build_parser().parse_args(
        ["replay", "--reason", "A", "--reason", "B", "--key", "k", "--id", "i", "--from", "exceptions", "--max", "3"]
    )
    assert (args.reason, args.key, args.id, args.origin, args.max) == (["A", "B"], ["k"], ["i"], "exceptions", 3)
    assert (args.rate, args.dry_run, args.func) == (50.0, False, cli._replay)
    assert cli.build_parser().parse_args(["replay"]).origin == "dead-letter"


@pytest.mark.parametrize("bad", [["--rate", "0"], ["--rate", "x"], ["--max", "-1"], ["--from", "elsewhere"]])
def test_bad_replay_arguments_are_usage_errors(bad):
    with pytest.raises(SystemExit) as exc:
        cli.main(["replay", *bad])
    assert exc.value.code == 2


def test_reversed_window_is_refused(capsys):
    assert cli.main(["replay", "--since", "2024-06-02", "--until", "2024-06-01"]) == 2
    assert "--since must be before --until" in capsys.readouterr().err


def test_operator_defaults_to_user_then_operator(monkeypatch):
    monkeypatch.setenv("USER", "ana")
    assert cli._operator(None) == "ana" and cli._operator("bob") == "bob"
    monkeypatch.delenv("USER")
    assert cli._operator(None) == "operator"


def test_resolve_refusal_exits_1_and_kafka_trouble_exits_2(monkeypatch, capsys):
    def refuse(*_a, **_k):
        raise Refused("exception 'x' is not in the exception ledger")

    monkeypatch.setattr(exceptions_cli, "resolve", refuse)
    assert cli.main(["exceptions", "resolve", "x", "--note", "n"]) == 1
    assert "refused: exception 'x' is not in the exception ledger" in capsys.readouterr().err

    def down(*_a, **_k):
        raise exceptions_cli.OpsError("cannot reach Kafka at nowhere")

    monkeypatch.setattr(exceptions_cli, "resolve", down)
    assert cli.main(["exceptions", "resolve", "x", "--note", "n"]) == 2
    monkeypatch.setattr(replay, "run", down)
    assert cli.main(["replay"]) == 2 and "cannot reach Kafka" in capsys.readouterr().err


def test_resolve_needs_a_note():
    with pytest.raises(SystemExit):
        cli.main(["exceptions", "resolve", "x"])


# --- the produce loop, with a fake producer and clock -----------------------------------------


class _Producer:
    def __init__(self, fail_topics=()):
        self.sent: list[tuple[str, bytes | None, list | None]] = []
        self.pending: list = []
        self.fail_topics = set(fail_topics)

    def produce(self, topic, key=None, value=None, headers=None, on_delivery=None):
        self.sent.append((topic, key, headers))
        self.pending.append((topic, on_delivery))

    def poll(self, _t):
        return 0

    def flush(self, _t):
        for topic, cb in self.pending:
            if cb:
                cb("broker said no" if topic in self.fail_topics else None, None)
        self.pending.clear()
        return 0


class _Clock:
    def __init__(self):
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self):
        return self.now

    def sleep(self, s):
        self.slept.append(round(s, 3))
        self.now += s


def _planned(*topics: str) -> list[R.Injection]:
    out = []
    for i, topic in enumerate(topics):
        hs = [("x-source-topic", topic.encode()), ("x-source-partition", b"0"), ("x-source-offset", str(i).encode())]
        out.append(R.plan(R.from_dead_letter(b"k", b"v", hs, f"d/0/{i}", 0), f"r{i}", "bob"))
    return out


def _run(monkeypatch, planned, producer, rate=2.0):
    monkeypatch.setattr(exceptions_cli.AvroOutputs, "__init__", lambda self, s, p=None: setattr(self, "producer", p))
    monkeypatch.setattr(exceptions_cli.AvroOutputs, "encode", lambda self, o: (route(o).topic, o.key.encode(), b"avro"))
    result = replay.Result(R.Selection(selected=[p.candidate for p in planned]), planned, False, None)
    clock, lines = _Clock(), []
    replay._replay(cli.get_settings(), producer, planned, {}, "bob", rate, result, lines.append, clock, clock.sleep)
    return result, clock, lines


def test_replays_are_paced_to_the_rate_and_each_is_followed_by_its_audit_and_resolution(monkeypatch):
    producer = _Producer()
    result, clock, _ = _run(monkeypatch, _planned(SRC, SRC, SRC), producer, rate=2.0)
    assert clock.slept == [0.5, 0.5] and len(result.replayed) == 3 and result.ok
    assert [t for t, _, _ in producer.sent] == [SRC, "sync.audit", "sync.exception-resolutions"] * 3


def test_a_replay_that_is_not_delivered_is_not_closed(monkeypatch):
    producer = _Producer(fail_topics={"gone"})
    result, _, lines = _run(monkeypatch, _planned("gone", SRC), producer, rate=1000)
    assert [i.topic for i, _ in result.failed] == ["gone"] and [i.topic for i in result.replayed] == [SRC]
    assert [t for t, _, _ in producer.sent] == ["gone", SRC, "sync.audit", "sync.exception-resolutions"]
    assert lines[0].startswith("FAILED dlq:gone/0/0 -> gone: broker said no") and not result.ok
    assert "failed 1" in result.summary()
