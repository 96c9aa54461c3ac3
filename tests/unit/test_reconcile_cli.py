"""``crm-erp-sync reconcile`` without a broker: argument and time parsing, exit codes, changelog folding."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from confluent_kafka import KafkaError

from app import cli
from app.domain.orders.deal import DealState, OrderRef
from app.engine import reader
from app.ops import reconcile as ops
from app.readmodels.reconcile import reconcile


def test_since_and_until_accept_dates_and_datetimes_and_default_to_utc():
    args = cli.build_parser().parse_args(
        ["reconcile", "--since", "2024-06-01", "--until", "2024-06-02T12:30:00+02:00", "--json"]
    )
    assert args.since == dt.datetime(2024, 6, 1, tzinfo=dt.UTC)
    assert args.until == dt.datetime(2024, 6, 2, 10, 30, tzinfo=dt.UTC)
    assert args.json and args.func is cli._reconcile
    assert cli.instant("2024-06-01T08:00:00Z") == dt.datetime(2024, 6, 1, 8, tzinfo=dt.UTC)
    assert cli._ms(cli.instant("2024-06-01")) == 1_717_200_000_000


def test_bad_or_reversed_times_are_usage_errors(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["reconcile", "--since", "last tuesday"])
    assert exc.value.code == 2 and "not an ISO-8601 date or datetime" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        cli.main(["reconcile", "--since", "2024-06-02", "--until", "2024-06-01"])
    assert exc.value.code == 2 and "--since must be before --until" in capsys.readouterr().err


def test_missing_changelog_exits_2_with_the_reason(monkeypatch, capsys):
    def missing(*_):
        raise reader.MissingTopicError("changelog topic x-deals-changelog does not exist")

    monkeypatch.setattr(ops, "run", missing)
    assert cli.main(["reconcile"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_report_is_printed_as_table_or_json_with_the_range_passed_through(monkeypatch, capsys):
    seen = []

    def run(_settings, since_ms, until_ms):
        seen.append((since_ms, until_ms))
        return reconcile([], since_ms, until_ms)

    monkeypatch.setattr(ops, "run", run)
    assert cli.main(["reconcile", "--until", "2024-06-01"]) == 0
    assert capsys.readouterr().out.startswith("reconciliation (start) .. 2024-06-01T00:00:00+00:00\n")
    assert cli.main(["reconcile", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["orders"] == 0
    assert seen == [(None, 1_717_200_000_000), (None, None)]


def test_changelog_topic_follows_the_app_id():
    assert ops.changelog_topic(cli.get_settings().model_copy(update={"app_id": "a1"})) == "a1-deals-changelog"


class _Err:
    def __init__(self, code):
        self._code = code

    def code(self):
        return self._code


class _Msg:
    def __init__(self, partition, offset, key=None, value=None, error=None):
        self._p, self._o, self._k, self._v, self._e = partition, offset, key, value, error

    def partition(self):
        return self._p

    def offset(self):
        return self._o

    def key(self):
        return self._k

    def value(self):
        return self._v

    def error(self):
        return self._e


class _Consumer:
    def __init__(self, msgs):
        self.msgs = list(msgs)

    def poll(self, _timeout):
        return self.msgs.pop(0) if self.msgs else None


def test_drain_keeps_the_last_value_per_key_drops_tombstones_and_stops_at_the_captured_end():
    msgs = [
        _Msg(0, 0, b"a", b"a1"),
        _Msg(1, 0, b"b", b"b1"),
        _Msg(0, 1, b"a", b"a2"),
        _Msg(1, 1, b"b", None),  # deleted
        _Msg(0, 2, b"c", b"c1"),  # last offset before the end of partition 0
        _Msg(0, 3, b"c", b"late"),  # written after the start: ignored
        _Msg(1, 2, None, error=_Err(KafkaError._PARTITION_EOF)),
    ]
    ends = {0: 3, 1: 5}  # partition 1's tail is control records only: its EOF ends it
    latest = reader.fold(reader._until_ends(_Consumer(msgs), "t", ends, timeout_s=5))
    assert latest == {b"a": b"a2", b"c": b"c1"} and ends == {}


def test_drain_gives_up_when_the_changelog_goes_silent(monkeypatch):
    clock = iter([0.0, 100.0])
    monkeypatch.setattr(reader.time, "monotonic", lambda: next(clock))
    with pytest.raises(reader.ReadError, match="unfinished"):
        list(reader._until_ends(_Consumer([]), "t", {0: 1}, timeout_s=5))


def test_parse_counts_values_that_are_not_deal_states():
    good = DealState(
        opportunity_id="o", order=OrderRef(create_command_id="c", digest="d", amount=None, currency=None)
    ).model_dump_json()
    states, bad = ops.parse({b"o": good.encode(), b"x": b"{not json", b"y": b'{"unexpected": 1}'})
    assert [s.opportunity_id for s in states] == ["o"] and bad == 2
