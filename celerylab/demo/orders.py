"""Order processing through the ORM: the bread-and-butter task of most Celery deployments (unchanged between runs)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update

from . import db
from .app import app
from .db import Customer, Order, OrderLine, Product

TIER_DISCOUNT = {"standard": 0, "silver": 5, "gold": 10}  # percent
COUPONS = {"WELCOME10": 10, "SPRING5": 5}


class OrderRejected(Exception):
    """The order cannot be placed (unknown customer or product); the task fails."""


@app.task(name="demo.orders.process")
def process_order(customer_id: int, lines: list[list[int]], coupon: str | None = None) -> dict[str, Any]:
    """Validate and price an order, store it with its lines, reserve stock; one transaction."""
    with db.session() as s, s.begin():
        customer = s.get(Customer, customer_id)
        if customer is None:
            raise OrderRejected(f"unknown customer {customer_id}")
        products = load_products(s, [pid for pid, _ in lines])
        missing = sorted({pid for pid, _ in lines} - set(products))
        if missing:
            raise OrderRejected(f"unknown product(s) {missing} in order for customer {customer_id}")
        total = price_order(customer, products, lines, coupon)
        order = Order(customer=customer, status="new", total_cents=total, created_at=datetime.now(UTC))
        order.lines = [
            OrderLine(product_id=pid, quantity=qty, unit_price_cents=products[pid].price_cents) for pid, qty in lines
        ]
        s.add(order)
        reserve_stock(s, lines)
        s.flush()
        return {"order_id": order.id, "total_cents": total, "lines": len(lines)}


def load_products(session: Any, ids: list[int]) -> dict[int, Product]:
    """The products of an order, by id (one SELECT … WHERE id IN …)."""
    return {p.id: p for p in session.scalars(select(Product).where(Product.id.in_(ids)))}


def price_order(customer: Customer, products: dict[int, Product], lines: list[list[int]], coupon: str | None) -> int:
    """Total in cents after the customer's tier discount and an optional coupon."""
    subtotal = sum(products[pid].price_cents * qty for pid, qty in lines)
    percent = TIER_DISCOUNT.get(customer.tier, 0) + COUPONS.get(coupon or "", 0)
    return subtotal - subtotal * percent // 100


def reserve_stock(session: Any, lines: list[list[int]]) -> None:
    """Decrement stock, one UPDATE per line (as ORM code usually does)."""
    for pid, qty in lines:
        session.execute(update(Product).where(Product.id == pid).values(stock=Product.stock - qty))
