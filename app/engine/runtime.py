"""Per-process resources the agents share: registry resolver, encoders, reference data, policy."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from decimal import Decimal

from confluent_kafka.schema_registry import AsyncSchemaRegistryClient

from app.client_config import kafka_config, registry_config
from app.contracts import account_owners, default_index, opportunity_erp_owned
from app.domain import ownership
from app.domain.exceptions.retries import parse_tiers
from app.domain.feedback.lifecycle import Slas
from app.domain.fx import RateFile
from app.domain.orders.validation import Policy
from app.domain.ownership import Ownership
from app.engine.reference_store import ReferenceFollower, ReferenceStore
from app.serde.avro import AvroDecoder, AvroEncoder
from app.serde.registry import SchemaResolver
from app.settings import Settings


class Runtime:
    """Lazily resolves, once per process, what the agents need from the registry."""

    def __init__(self, settings: Settings) -> None:
        self.settings = s = settings
        self.resolver = SchemaResolver(AsyncSchemaRegistryClient(registry_config(s)))
        self._encoders: dict[str, AvroEncoder] = {}
        self._lock = asyncio.Lock()
        self.references = ReferenceStore()
        self._follower: ReferenceFollower | None = None
        self.policy = Policy(
            closed_won_stage=s.closed_won_stage,
            amount_tolerance=Decimal(str(s.amount_tolerance)),
            max_discount_percent=Decimal(str(s.max_discount_percent)),
            integration_user=s.integration_crm_user,
            grace=dt.timedelta(seconds=s.validation_grace_s),
            slas=Slas(
                accept=dt.timedelta(seconds=s.sla_accept_s),
                ship=dt.timedelta(seconds=s.sla_ship_s),
                invoice=dt.timedelta(seconds=s.sla_invoice_s),
                payment=dt.timedelta(seconds=s.sla_payment_s),
                payment_grace=dt.timedelta(seconds=s.sla_payment_grace_s),
                auto_heal=s.auto_heal,
                acceptance_billing=frozenset(x.strip() for x in s.acceptance_billing_schedules.split(",") if x.strip()),
            ),
            retry_tiers=tuple(parse_tiers(s.retry_delays)),
            retention=dt.timedelta(seconds=s.retention_s),
            renewal_lead=dt.timedelta(days=s.renewal_lead_days),
        )
        self.ownership = Ownership(ownership.load(s.ownership_rules), *account_owners())
        owned = opportunity_erp_owned() & frozenset(ownership.SHOWN)
        restore = frozenset(f for f in owned if self.ownership.rules.action(f) == "restore")
        self.policy = dataclasses.replace(self.policy, erp_owned=owned, restore=restore)
        self.rates = RateFile(s.fx_rates)  # read again when the file changes

    def decoder(self, contract: str | None = None, raw_decimals: bool = False) -> AvroDecoder:
        reader = default_index().expanded(contract) if contract else None
        return AvroDecoder(self.resolver, reader, raw_decimals)

    async def encoder(self, topic: str, contract: str) -> AvroEncoder:
        """An encoder for ``<topic>-value`` with the registered id of ``contract`` (never auto-registers)."""
        enc = self._encoders.get(topic)
        if enc is None:
            async with self._lock:
                enc = self._encoders.get(topic)
                if enc is None:
                    schema = default_index().expanded(contract)
                    schema_id = await self.resolver.id_for(f"{topic}-value", schema)
                    enc = self._encoders[topic] = AvroEncoder(schema_id, schema)
        return enc

    def follow_references(self) -> None:
        """Start reading reference data into memory (once per process)."""
        if self._follower is None:
            s = self.settings
            self._follower = ReferenceFollower(self.references, kafka_config(s), s.topic("sync.reference-data"))
            self._follower.start()

    async def references_ready(self) -> None:
        self.follow_references()
        while not self.references.ready.is_set():
            await asyncio.sleep(0.1)
