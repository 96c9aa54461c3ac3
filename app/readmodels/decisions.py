"""The decision-boundary API's answers: a deal's sync status, an account's ERP link and credit, a dry run.

Sales asks at close time "can this deal become an order, and is the customer's credit OK?". These
are the answers, built from what the worker holds (a deal's state, the account's link and reference
data) with the pipeline's own rules: the dry run is ``validate`` with the same policy and reason
codes, and emits nothing. Pure: ``app/engine/api.py`` serves them over HTTP, routed to the worker
that owns the key. The OpenAPI document is built from these models, so it cannot drift from them.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.domain.customer_links import CustomerLink
from app.domain.exceptions.taxonomy import classify
from app.domain.feedback.lifecycle import ErpView, order_status
from app.domain.fx import Rates
from app.domain.orders import renewals, resync
from app.domain.orders.deal import DealState
from app.domain.orders.references import Account
from app.domain.orders.validation import Policy, validate

API_VERSION = "1.0.0"
MAX_ID = 255  # longer path ids are refused (400), not looked up


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Stage(StrEnum):
    """Where a deal stands in the opportunity → order → invoice → payment lifecycle."""

    OPEN = "OPEN"  # not closed won (yet)
    LOST = "LOST"
    WAITING = "WAITING"  # closed won, parked on a dependency or failing validation
    ORDER_REQUESTED = "ORDER_REQUESTED"  # the create went out; the ERP has not answered
    ACCEPTED = "ACCEPTED"
    REJECTED = "REJECTED"
    PARTIALLY_SHIPPED = "PARTIALLY_SHIPPED"
    SHIPPED = "SHIPPED"
    INVOICED = "INVOICED"
    PAID = "PAID"
    CANCELLED = "CANCELLED"


class OpenException(_Model):
    reason_code: str
    exception_id: str


class OpenAlert(_Model):
    alert_id: str
    kind: str
    severity: str
    opened_at: dt.datetime


class RenewalView(_Model):
    term_start: dt.date
    term_end: dt.date
    requested: bool = Field(description="the CRM was asked to create the renewal opportunity")
    renewal_opportunities: dict[str, str] = Field(description="renewal opportunity id -> its stage")


class DealStatus(_Model):
    """GET /api/v1/deals/{opportunity_id}"""

    opportunity_id: str
    crm_stage: str | None
    lifecycle_stage: Stage
    order_number: str | None
    create_command_id: str | None
    amount: Decimal | None
    currency: str | None
    open_exceptions: list[OpenException]
    open_drift_alerts: list[OpenAlert]
    service_activated: bool
    customer_accepted: bool
    renewal: RenewalView | None
    awaiting_resync: list[str] = Field(
        default_factory=list, description="records whose change the CRM source lost (a Salesforce gap), until resynced"
    )


class CreditStatus(StrEnum):
    OK = "OK"
    NOT_LINKED = "NOT_LINKED"  # no active ERP customer for the account (yet)
    ON_HOLD = "ON_HOLD"
    OVER_LIMIT = "OVER_LIMIT"
    LIMIT_IN_OTHER_CURRENCY = "LIMIT_IN_OTHER_CURRENCY"  # no rate to compare them: a person decides


class AccountStatus(_Model):
    """GET /api/v1/accounts/{account_id}"""

    account_id: str
    known_in_crm: bool
    erp_customer_number: str | None
    link_status: str = Field(description="the ERP customer's status (ACTIVE, DEACTIVATED, MERGED) or NOT_LINKED")
    credit_limit: Decimal | None
    credit_currency: str | None
    credit_hold: bool
    payment_terms: str | None


class Reason(_Model):
    reason_code: str
    detail: str
    owner_team: str
    waits_for_dependency: bool = Field(description="the pipeline parks the deal until it arrives")


class Credit(_Model):
    status: CreditStatus
    ok: bool
    detail: str


class DealCheck(_Model):
    """GET /api/v1/deals/{opportunity_id}/check: the pipeline's rules on the deal as it stands, as if
    it closed won now. Nothing is emitted."""

    opportunity_id: str
    can_become_order: bool = Field(description="complete, and the customer's credit is OK")
    complete: bool = Field(description="every completeness rule passes")
    reasons: list[Reason]
    credit: Credit
    checked_at: dt.datetime


class Problem(_Model):
    """Any error answer."""

    error: str
    detail: str | None = None


def deal_status(state: DealState) -> DealStatus:
    header, erp = state.header, state.erp or ErpView()
    order = state.order
    return DealStatus(
        opportunity_id=state.opportunity_id,
        crm_stage=header.stage if header else None,
        lifecycle_stage=_stage(state),
        order_number=erp.order_number,
        create_command_id=order.create_command_id if order else None,
        amount=header.amount if header else None,
        currency=header.currency if header else None,
        open_exceptions=[
            OpenException(reason_code=r, exception_id=i) for r, i in sorted(state.open_exceptions.items())
        ],
        open_drift_alerts=[
            OpenAlert(alert_id=a.alert_id, kind=a.kind, severity=a.severity, opened_at=_instant(a.opened_at_ms))
            for a in sorted(state.alerts.values(), key=lambda a: a.alert_id)
        ],
        awaiting_resync=sorted(state.resync),
        service_activated=erp.activated_at_ms is not None,
        customer_accepted=erp.customer_accepted_at_ms is not None,
        renewal=None
        if state.renewal is None
        else RenewalView(
            term_start=state.renewal.term_start,
            term_end=state.renewal.term_end,
            requested=state.renewal.requested is not None,
            renewal_opportunities=dict(state.renewals),
        ),
    )


def _stage(state: DealState) -> Stage:
    header = state.header
    if header is None or header.deleted or header.stage == renewals.LOST:
        return Stage.CANCELLED if state.cancelled_orders else Stage.LOST
    if state.order is None:
        if state.cancelled_orders:
            return Stage.CANCELLED
        return Stage.WAITING if state.close_pos is not None else Stage.OPEN
    if state.erp is None:
        return Stage.ORDER_REQUESTED
    status = order_status(state.erp, cancelled=False)
    return Stage.ORDER_REQUESTED if status == "PENDING" else Stage(status)


def account_status(account_id: str, account: Account | None, link: CustomerLink | None) -> AccountStatus:
    number = link.customer_number if link else (account.erp_customer_number if account else None)
    return AccountStatus(
        account_id=account_id,
        known_in_crm=account is not None,
        erp_customer_number=number,
        link_status=str(link.status) if link else "NOT_LINKED",
        credit_limit=link.credit_limit if link else None,
        credit_currency=link.currency if link else None,
        credit_hold=link.credit_hold if link else False,
        payment_terms=(link.payment_terms if link else None) or (account.payment_terms if account else None),
    )


def credit(
    amount: Decimal | None,
    currency: str | None,
    account: Account | None,
    link: CustomerLink | None,
    rates: Rates | None = None,
) -> Credit:
    """The customer's credit for an order of ``amount`` ``currency``, as the ERP last reported it; a
    limit in another currency is compared through ``rates`` (not comparable without a rate)."""
    if link is None or not link.linked:
        if account is not None and account.erp_customer_number:  # linked in the CRM; the ERP said nothing new
            return Credit(status=CreditStatus.OK, ok=True, detail="linked; the ERP reported no credit state")
        return Credit(status=CreditStatus.NOT_LINKED, ok=False, detail="the account has no active ERP customer")
    if link.credit_hold:
        return Credit(status=CreditStatus.ON_HOLD, ok=False, detail=f"customer {link.customer_number} is on hold")
    if link.credit_limit is None or amount is None:
        return Credit(status=CreditStatus.OK, ok=True, detail="no credit limit applies")
    if link.currency and currency and link.currency != currency:
        order = rates.to_base(amount, currency) if rates else None
        limit = rates.to_base(link.credit_limit, link.currency) if rates else None
        if order is None or limit is None:
            detail = f"credit limit {link.credit_limit} {link.currency}, order in {currency} (no rate to compare)"
            return Credit(status=CreditStatus.LIMIT_IN_OTHER_CURRENCY, ok=False, detail=detail)
        base = rates.base if rates else ""
        if order > limit:
            detail = (
                f"order {amount} {currency} exceeds the credit limit {link.credit_limit} {link.currency} (in {base})"
            )
            return Credit(status=CreditStatus.OVER_LIMIT, ok=False, detail=detail)
        return Credit(status=CreditStatus.OK, ok=True, detail=f"within the credit limit, compared in {base}")
    if amount > link.credit_limit:
        detail = f"order {amount} exceeds the credit limit {link.credit_limit} {link.currency or ''}".rstrip()
        return Credit(status=CreditStatus.OVER_LIMIT, ok=False, detail=detail)
    return Credit(status=CreditStatus.OK, ok=True, detail=f"within the credit limit {link.credit_limit}")


def check(state: DealState, refs: Any, policy: Policy, now: dt.datetime, rates: Rates | None = None) -> DealCheck:
    """The dry run: completeness rules and credit, for the deal as it stands."""
    header = state.header
    reasons: list[Reason] = []
    if header is None:
        reasons.append(Reason(reason_code="NO_HEADER", detail="only lines are known: the opportunity itself has not "
                              "arrived", owner_team="integration-platform", waits_for_dependency=True))  # fmt: skip
    else:
        failures, _ = validate(header, state.lines, refs, policy, now.date())
        for f in [*failures, *resync.failures(state, refs)]:
            c = classify(f.reason)
            reasons.append(
                Reason(
                    reason_code=str(f.reason), detail=f.detail, owner_team=c.owner_team, waits_for_dependency=c.parks
                )
            )
    account_id = header.account_id if header else None
    account = refs.account(account_id) if account_id else None
    link = refs.link(account_id) if account_id else None
    cr = credit(header.amount if header else None, header.currency if header else None, account, link, rates)
    return DealCheck(
        opportunity_id=state.opportunity_id,
        can_become_order=not reasons and cr.ok,
        complete=not reasons,
        reasons=reasons,
        credit=cr,
        checked_at=now,
    )


def _instant(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC)


def openapi(server: str | None = None) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the API (schemas from the models above)."""
    models = (DealStatus, DealCheck, AccountStatus, Problem)
    schemas: dict[str, Any] = {}
    for m in models:
        schema = m.model_json_schema(ref_template="#/components/schemas/{model}", mode="serialization")
        schemas.update(schema.pop("$defs", {}))
        schemas[m.__name__] = schema

    def ref(name: str) -> dict[str, Any]:
        return {"content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}}

    def errors(*codes: int) -> dict[str, Any]:
        text = {
            400: "the id is empty or longer than 255 characters",
            401: "a bearer token is required (CRM_ERP_WEB_TOKEN)",
            404: "the worker holds no such key",
            503: "the worker is recovering its tables or rebalancing, or the key's owner is unreachable",
        }
        return {str(c): {"description": text[c], **ref("Problem")} for c in codes}

    def path_param(name: str, what: str) -> dict[str, Any]:
        return {
            "name": name,
            "in": "path",
            "required": True,
            "description": what,
            "schema": {"type": "string", "minLength": 1, "maxLength": MAX_ID},
        }

    opp = path_param("opportunity_id", "CRM opportunity id")
    acc = path_param("account_id", "CRM account id")
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "crm-erp-sync decision-boundary API",
            "version": API_VERSION,
            "description": "Can this deal become an order, and is the customer's credit OK? Answered from the "
            "worker's tables by whichever worker owns the key (any worker can be asked).",
        },
        "paths": {
            "/api/v1/deals/{opportunity_id}": {
                "get": {
                    "operationId": "getDealStatus",
                    "summary": "A deal's sync status: order number, lifecycle stage, open exceptions and alerts",
                    "parameters": [opp],
                    "responses": {
                        "200": {"description": "the deal", **ref("DealStatus")},
                        **errors(400, 401, 404, 503),
                    },
                }
            },
            "/api/v1/deals/{opportunity_id}/check": {
                "get": {
                    "operationId": "checkDeal",
                    "summary": "Dry run: the completeness rules and the customer's credit, nothing emitted",
                    "parameters": [opp],
                    "responses": {
                        "200": {"description": "the verdict", **ref("DealCheck")},
                        **errors(400, 401, 404, 503),
                    },
                }
            },
            "/api/v1/accounts/{account_id}": {
                "get": {
                    "operationId": "getAccountStatus",
                    "summary": "An account's ERP customer link and credit state",
                    "parameters": [acc],
                    "responses": {
                        "200": {"description": "the account", **ref("AccountStatus")},
                        **errors(400, 401, 404, 503),
                    },
                }
            },
        },
        "components": {"schemas": schemas, "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}, {}],
    }
    if server:
        doc["servers"] = [{"url": server}]
    return doc
