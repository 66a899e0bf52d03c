"""The worklist page (read-only: orders are placed by the LIS or with `trygg orders add`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from gateway.orders.store import list_orders
from gateway.web.auth import Authenticated
from gateway.web.context import Web
from gateway.web.routes.params import ORDER_STATES, PAGE_LIMIT, OrderState, order_state_filter

router = APIRouter(include_in_schema=False, dependencies=[Authenticated])


@router.get("/orders", response_class=HTMLResponse)
async def orders_page(
    request: Request, web: Web, state: Annotated[OrderState, Query()] = "open"
) -> HTMLResponse:
    """The worklist, read-only: orders are placed by the LIS or with `trygg orders add`."""
    rows = await web.query(
        lambda conn: list_orders(conn, state=order_state_filter(state), limit=PAGE_LIMIT)
    )
    return web.page(request, "orders.html", {"rows": rows, "state": state, "states": ORDER_STATES})
