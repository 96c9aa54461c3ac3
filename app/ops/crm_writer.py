"""``crm-erp-sync crm-writer``: apply ``crm.commands.update``, ``crm.commands.account-update`` and
``crm.commands.renewal`` to a CRM kept in PostgreSQL.

A reference writer for CRMs that live in a database the team's Debezium connector reads (the local
platform's, or one like it). Salesforce teams apply the same commands through their own API
integration. Why not Debezium's JDBC sink: the update contract means "null: unchanged" and one
command spans two tables (the opportunity and its account); the JDBC sink writes every field of a
flat record into one table, so it would overwrite CRM values with nulls.

Per command, ``plan`` (pure) turns the update into row writes through ``app/mappings/crm-writeback.toml``;
the loop applies them in one transaction, stamped with the integration user so that the change,
returning through CDC, is recognised as the service's own (loop suppression), and commits the
command's offset only after the database committed: at least once, and a write that would change
nothing is skipped (``IS DISTINCT FROM``), so a redelivered command does not even produce a CDC event.
"""

from __future__ import annotations

import logging
import signal
import threading
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.settings import REPO_ROOT, Settings

log = logging.getLogger(__name__)
WRITEBACK = REPO_ROOT / "app" / "mappings" / "crm-writeback.toml"
TOPICS = ("crm.commands.update", "crm.commands.account-update", "crm.commands.renewal")


@dataclass(frozen=True)
class RowWrite:
    """Set ``columns`` on row ``row_id`` of CRM table ``table``, as ``user``."""

    table: str
    id_column: str
    row_id: str
    columns: dict[str, Any]
    modified_by: tuple[str, str]  # (column, user)
    modified_at: str  # column stamped with the time of the write
    insert: bool = False  # a new row (nothing written when ``row_id`` exists), not an update


def load_writeback(path: Path = WRITEBACK) -> dict[str, dict[str, Any]]:
    return tomllib.loads(path.read_text())


def plan(update: dict[str, Any], rules: dict[str, dict[str, Any]], user: str) -> list[RowWrite]:
    """The row writes one command asks for; fields that are null are left as they are."""
    writes = []
    for name, rule in rules.items():
        row_id = update.get(rule["row"])
        columns = {col: update[field] for field, col in rule["columns"].items() if update.get(field) is not None}
        if row_id is None or not columns:
            continue
        by = (rule["modified_by"], user)
        columns |= rule.get("set", {})
        table, insert = rule.get("insert", name), "insert" in rule
        writes.append(RowWrite(table, rule["id"], str(row_id), columns, by, rule["modified_at"], insert))
    return writes


def apply(conn, writes: list[RowWrite]) -> int:
    """Apply ``writes`` in the connection's open transaction; the number of rows that changed."""
    from psycopg import sql

    changed = 0
    for w in writes:
        names = list(w.columns)
        if w.insert:
            insert = sql.SQL(
                "INSERT INTO {table} ({id}, {cols}, {by}, {at}) VALUES (%s, {vals}, %s, now())"
                " ON CONFLICT ({id}) DO NOTHING"
            ).format(
                table=sql.Identifier(w.table),
                id=sql.Identifier(w.id_column),
                cols=sql.SQL(", ").join(sql.Identifier(n) for n in names),
                by=sql.Identifier(w.modified_by[0]),
                at=sql.Identifier(w.modified_at),
                vals=sql.SQL(", ").join(sql.Placeholder() * len(names)),
            )
            changed += conn.execute(insert, [w.row_id, *(w.columns[n] for n in names), w.modified_by[1]]).rowcount
            continue
        statement = sql.SQL(
            "UPDATE {table} SET {sets}, {by} = %s, {at} = now() WHERE {id} = %s AND ({cols}) IS DISTINCT FROM ({vals})"
        ).format(
            table=sql.Identifier(w.table),
            sets=sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(n)) for n in names),
            by=sql.Identifier(w.modified_by[0]),
            at=sql.Identifier(w.modified_at),
            id=sql.Identifier(w.id_column),
            cols=sql.SQL("ROW({})").format(sql.SQL(", ").join(sql.Identifier(n) for n in names)),
            vals=sql.SQL("ROW({})").format(sql.SQL(", ").join(sql.Placeholder() * len(names))),
        )
        values = [w.columns[n] for n in names]
        changed += conn.execute(statement, [*values, w.modified_by[1], w.row_id, *values]).rowcount
    return changed


def database_url(s: Settings) -> str:
    if s.crm_database_url is not None:
        return s.crm_database_url.get_secret_value()
    from app.platform import cdc

    return cdc.database_url(s)


def run(s: Settings, stop: threading.Event | None = None, say: Callable[[str], None] = print) -> int:
    """Apply updates until ``stop`` is set (or SIGTERM/SIGINT); the number of commands applied."""
    import psycopg
    from confluent_kafka.schema_registry import SchemaRegistryClient, topic_subject_name_strategy
    from confluent_kafka.schema_registry.avro import AvroDeserializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    from app.client_config import registry_config
    from app.engine.reader import Subscription

    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    rules = load_writeback()
    decode = AvroDeserializer(
        SchemaRegistryClient(registry_config(s)), conf={"subject.name.strategy": topic_subject_name_strategy}
    )
    topics = [s.topic(t) for t in TOPICS]
    consumer = Subscription(s, topics, f"{s.app_id}-crm-writer", **{"enable.auto.commit": False})
    applied = 0
    target = "CRM_ERP_CRM_DATABASE_URL" if s.crm_database_url else "the local CRM database"
    say(f"crm-writer: {', '.join(topics)} → {target}")
    try:
        with psycopg.connect(database_url(s), options="-c TimeZone=UTC") as conn:
            while not stop.is_set():
                msg = consumer.poll(0.5)
                if msg is None:
                    continue
                update = decode(msg.value(), SerializationContext(msg.topic(), MessageField.VALUE))
                with conn.transaction():
                    changed = apply(conn, plan(update, rules, s.integration_crm_user))
                consumer.commit(msg)
                applied += 1
                log.info("applied %s: %d row(s) changed", update["envelope"]["command_id"], changed)
    finally:
        consumer.close()
    return applied
