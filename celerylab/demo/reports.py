"""Customer order reports.  **Planted regression (candidate):** :func:`load_report_rows` walks lazy-loaded
relationships (one SELECT per order for its lines: the N+1 pattern) instead of one joined query."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import select
from sqlalchemy.orm import joinedload

from . import db
from .app import app, candidate
from .db import Customer, Order, OrderLine, Product


class ReportRow(NamedTuple):
    order_id: int
    created_at: datetime
    customer: str
    tier: str
    sku: str
    product: str
    quantity: int
    unit_price_cents: int


@app.task(name="demo.reports.build")
def build_report(country: str, limit: int = 25, offset: int = 0) -> dict[str, Any]:
    """Orders of one country with their customers and products, summarised and rendered as CSV."""
    with db.session() as s:
        catalog = load_catalog(s)
        rows = load_report_rows(s, country, limit, offset)
    return summarize_report(rows, catalog)


def load_catalog(session: Any) -> dict[str, Product]:
    """Today's product catalogue by SKU (to compare paid prices with current ones)."""
    return {p.sku: p for p in session.scalars(select(Product))}


def _report_orders(country: str, limit: int, offset: int) -> Any:
    return (
        select(Order.id)
        .join(Order.customer)
        .where(Customer.country == country, Order.status.in_(("paid", "shipped")))
        .order_by(Order.id)
        .limit(limit)
        .offset(offset)
    )


def load_report_rows(session: Any, country: str, limit: int, offset: int) -> list[ReportRow]:
    """The report's rows: one per order line."""
    ids = _report_orders(country, limit, offset)
    if candidate():
        # N+1: load the orders (with their customer), then let the ORM lazy-load each order's lines: one SELECT per
        # order.  (line.product comes from the session's identity map: the catalogue loaded every product.)
        orders = session.scalars(
            select(Order).options(joinedload(Order.customer)).where(Order.id.in_(ids)).order_by(Order.id)
        ).all()
        rows = []
        for o in orders:
            for line in o.lines:
                rows.append(
                    ReportRow(
                        o.id,
                        o.created_at,
                        o.customer.name,
                        o.customer.tier,
                        line.product.sku,
                        line.product.name,
                        line.quantity,
                        line.unit_price_cents,
                    )
                )
        return rows
    stmt = (
        select(
            Order.id,
            Order.created_at,
            Customer.name,
            Customer.tier,
            Product.sku,
            Product.name,
            OrderLine.quantity,
            OrderLine.unit_price_cents,
        )
        .join(Order.customer)
        .join(Order.lines)
        .join(OrderLine.product)
        .where(Order.id.in_(ids))
        .order_by(Order.id, OrderLine.id)
    )
    return [ReportRow(*r) for r in session.execute(stmt)]


def summarize_report(rows: list[ReportRow], catalog: dict[str, Product]) -> dict[str, Any]:
    """Revenue per customer and per product, price drift against the catalogue, and the CSV export."""
    drift = sum(r.quantity * (catalog[r.sku].price_cents - r.unit_price_cents) for r in rows if r.sku in catalog)
    per_customer: dict[str, int] = defaultdict(int)
    per_product: dict[str, int] = defaultdict(int)
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(ReportRow._fields)
    for r in rows:
        amount = r.quantity * r.unit_price_cents
        per_customer[r.customer] += amount
        per_product[r.sku] += amount
        w.writerow(
            [r.order_id, r.created_at.isoformat(), r.customer, r.tier, r.sku, r.product, r.quantity, r.unit_price_cents]
        )
    top = sorted(per_customer.items(), key=lambda kv: kv[1], reverse=True)[:5]
    return {
        "rows": len(rows),
        "orders": len({r.order_id for r in rows}),
        "top_customers": top,
        "products": len(per_product),
        "price_drift_cents": drift,
        "csv_bytes": len(out.getvalue()),
    }
