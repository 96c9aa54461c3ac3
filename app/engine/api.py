"""The decision-boundary API on the worker's web server: ``/api/v1/…`` (answers: app/readmodels/decisions.py).

A deal's answers come from the ``deals`` table and an account's from ``customer-links`` (with the
reference data every worker holds). Faust's table routing sends each request to the worker whose
active partition holds the key (``app.table_route``: the partition assignor knows every worker's
URL), so any worker answers any key; the owner runs the same checks again. Access follows ``/ops``:
with ``CRM_ERP_WEB_TOKEN`` set, a bearer token is required (the OpenAPI document itself is open).
While tables recover or partitions move, the answer is 503 with ``Retry-After``, never a stale 404.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from faust.web import Request, Response, View

from app.domain.customer_links import CustomerLink
from app.domain.orders.deal import DealState
from app.readmodels import decisions

if TYPE_CHECKING:
    from app.engine.bootstrap import Engine

log = logging.getLogger(__name__)
Guard = Callable[[View, Request], "Response | None"]


def register(engine: Engine, denied: Guard) -> None:
    """The API's pages on the engine's app; ``denied`` answers a request that lacks the token."""
    app, tables, runtime = engine.app, engine.tables, engine.runtime

    def problem(view: View, status: int, error: str, detail: str | None = None) -> Response:
        headers = {"Retry-After": "5"} if status == 503 else None
        body = decisions.Problem(error=error, detail=detail).model_dump(mode="json")
        return view.json(body, status=status, headers=headers)

    def refused(view: View, request: Request, key: str) -> Response | None:
        """The answer when the request may not be looked up (None: go on)."""
        no = denied(view, request)
        if no is not None:
            return no
        if not 0 < len(key) <= decisions.MAX_ID:
            return problem(view, 400, "bad id", f"an id has 1 to {decisions.MAX_ID} characters")
        try:
            key.encode("utf-8")
        except UnicodeEncodeError:
            return problem(view, 400, "bad id", "the id is not valid UTF-8")
        if not app.tables.actives_ready or app.rebalancing:
            return problem(view, 503, "not ready", "the worker is recovering its tables or rebalancing")
        return None

    def answer(view: View, build: Callable[[], Any]) -> Response:
        try:
            found = build()
        except Exception:
            log.exception("API: building the answer failed")
            return problem(view, 500, "internal error", "see the worker's log")
        if found is None:
            return problem(view, 404, "not found", "no such key on the worker that owns it")
        return view.json(found.model_dump(mode="json"), headers={"Cache-Control": "no-store"})

    def deal(key: str) -> DealState | None:
        raw = tables.deals.get(key.encode())
        return DealState.model_validate_json(raw) if raw else None

    def routed(table: Any, param: str, fun: Callable[..., Awaitable[Response]]):
        """``fun`` run on the worker owning ``param``'s key in ``table`` (forwarded there otherwise)."""
        return app.table_route(table=table, match_info=param)(fun)

    async def deal_status(view: View, request: Request, opportunity_id: str) -> Response:
        return answer(view, lambda: (s := deal(opportunity_id)) and decisions.deal_status(s))

    async def deal_check(view: View, request: Request, opportunity_id: str) -> Response:
        now = dt.datetime.now(dt.UTC)
        return answer(
            view,
            lambda: (
                (s := deal(opportunity_id))
                and decisions.check(s, runtime.references, runtime.policy, now, runtime.rates.current())
            ),
        )

    async def account_status(view: View, request: Request, account_id: str) -> Response:
        def build():
            account = runtime.references.account(account_id)
            raw = tables.customer_links.get(account_id.encode())  # the owner's link; every worker's copy else
            link = CustomerLink.model_validate_json(raw) if raw else runtime.references.link(account_id)
            if account is None and link is None:
                return None
            return decisions.account_status(account_id, account, link)

        return answer(view, build)

    deal_status_routed = routed(tables.deals, "opportunity_id", deal_status)
    deal_check_routed = routed(tables.deals, "opportunity_id", deal_check)
    account_routed = routed(tables.customer_links, "account_id", account_status)

    @app.page("/api/v1/openapi.json")
    class OpenApi(View):
        """The API's OpenAPI 3.1 document."""

        async def get(self, request: Request) -> Response:
            return self.json(decisions.openapi())

    def page(path: str, name: str, doc: str, route: Callable[..., Awaitable[Response]], param: str) -> None:
        async def get(self: View, request: Request, **match: str) -> Response:
            no = refused(self, request, match[param])
            return no if no is not None else await route(self, request, **match)

        app.page(path)(type(name, (View,), {"__doc__": doc, "get": get}))

    page("/api/v1/deals/{opportunity_id}", "DealStatusView", "A deal's sync status.", deal_status_routed,
         "opportunity_id")  # fmt: skip
    page("/api/v1/deals/{opportunity_id}/check", "DealCheckView", "A dry run of the deal against the pipeline's "
         "rules and the customer's credit.", deal_check_routed, "opportunity_id")  # fmt: skip
    page("/api/v1/accounts/{account_id}", "AccountStatusView", "An account's ERP customer link and credit.",
         account_routed, "account_id")  # fmt: skip
