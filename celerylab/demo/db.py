"""The demo shop's schema (SQLAlchemy 2 ORM), a per-process engine, and a deterministic seed.

Works on PostgreSQL (psycopg 3) and SQLite.  The engine is created lazily in the process that uses it, so a
prefork worker's children each get their own connection pool (a pool must never cross a ``fork``).
"""

from __future__ import annotations

import os
import random
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    DateTime,
    ForeignKey,
    Integer,
    String,
    create_engine,
    insert,
    make_url,
    text,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

from . import settings

COUNTRIES = ("DE", "FR", "NL", "US", "GB", "ES", "IT", "PL")
TIERS = ("standard", "silver", "gold")
SEED_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


class Base(DeclarativeBase):
    pass


class Customer(Base):
    __tablename__ = "customers"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(80))
    email: Mapped[str] = mapped_column(String(120))
    country: Mapped[str] = mapped_column(String(2), index=True)
    tier: Mapped[str] = mapped_column(String(12))
    orders: Mapped[list[Order]] = relationship(back_populates="customer")


class Product(Base):
    __tablename__ = "products"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sku: Mapped[str] = mapped_column(String(16), unique=True)
    name: Mapped[str] = mapped_column(String(80))
    price_cents: Mapped[int] = mapped_column(Integer)
    stock: Mapped[int] = mapped_column(Integer)


class Order(Base):
    __tablename__ = "orders"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    status: Mapped[str] = mapped_column(String(12), index=True)
    total_cents: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    customer: Mapped[Customer] = relationship(back_populates="orders")
    lines: Mapped[list[OrderLine]] = relationship(back_populates="order", order_by="OrderLine.id")


class OrderLine(Base):
    __tablename__ = "order_lines"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"))
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price_cents: Mapped[int] = mapped_column(Integer)
    order: Mapped[Order] = relationship(back_populates="lines")
    product: Mapped[Product] = relationship()


_engine: Engine | None = None
_engine_pid: int | None = None


def engine() -> Engine:
    """This process's engine for :func:`settings.database_url` (a new one after a fork)."""
    global _engine, _engine_pid
    if _engine is None or _engine_pid != os.getpid():
        if _engine is not None:
            _engine.dispose(close=False)  # the parent's connections belong to the parent
        _engine = create_engine(settings.database_url(), pool_size=2, max_overflow=2, pool_pre_ping=False)
        _engine_pid = os.getpid()
    return _engine


def session() -> Session:
    """A new ORM session on this process's engine (use as a context manager)."""
    return Session(engine(), expire_on_commit=False)


def ensure_database(url: str) -> None:
    """Create the PostgreSQL database named in ``url`` if it is missing (SQLite creates files itself)."""
    u = make_url(url)
    if u.get_backend_name() != "postgresql" or not u.database:
        return
    admin = create_engine(u.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as c:
            if c.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": u.database}).first() is None:
                c.execute(text(f'CREATE DATABASE "{u.database}"'))
    finally:
        admin.dispose()


def drop_database(url: str) -> None:
    """Drop the PostgreSQL database named in ``url`` (or delete the SQLite file)."""
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        if u.database and os.path.exists(u.database):
            os.remove(u.database)
        return
    admin = create_engine(u.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{u.database}" WITH (FORCE)'))
    finally:
        admin.dispose()


def seed(url: str, *, customers: int = 300, products: int = 40, orders: int = 3000, seed: int = 7) -> dict[str, int]:
    """Drop and recreate the schema in ``url`` and fill it deterministically; returns row counts."""
    ensure_database(url)
    rng = random.Random(seed)
    eng = create_engine(url)
    try:
        Base.metadata.drop_all(eng)
        Base.metadata.create_all(eng)
        cust_rows = [
            {
                "id": i,
                "name": f"Customer {i:04d}",
                "email": f"customer{i}@example.com",
                "country": COUNTRIES[i % len(COUNTRIES)],
                "tier": rng.choice(TIERS),
            }
            for i in range(1, customers + 1)
        ]
        prod_rows: list[dict[str, Any]] = [
            {
                "id": i,
                "sku": f"SKU-{i:05d}",
                "name": f"Product {i}",
                "price_cents": rng.randint(199, 49_999),
                "stock": 1_000_000,
            }
            for i in range(1, products + 1)
        ]
        order_rows, line_rows = [], []
        line_id = 0
        for oid in range(1, orders + 1):
            lines: list[dict[str, Any]] = []
            for _ in range(rng.randint(1, 5)):
                p = prod_rows[rng.randrange(products)]
                line_id += 1
                lines.append(
                    {
                        "id": line_id,
                        "order_id": oid,
                        "product_id": p["id"],
                        "quantity": rng.randint(1, 4),
                        "unit_price_cents": p["price_cents"],
                    }
                )
            line_rows += lines
            order_rows.append(
                {
                    "id": oid,
                    "customer_id": rng.randint(1, customers),
                    "status": rng.choice(("paid", "shipped")),
                    "total_cents": sum(x["quantity"] * x["unit_price_cents"] for x in lines),
                    "created_at": SEED_EPOCH + timedelta(minutes=7 * oid),
                }
            )
        with eng.begin() as c:
            c.execute(insert(Customer), cust_rows)
            c.execute(insert(Product), prod_rows)
            c.execute(insert(Order), order_rows)
            c.execute(insert(OrderLine), line_rows)
            if eng.dialect.name == "postgresql":  # explicit ids were inserted: move the sequences past them
                for table in ("customers", "products", "orders", "order_lines"):
                    seq = f"pg_get_serial_sequence('{table}', 'id')"
                    c.execute(text(f"SELECT setval({seq}, (SELECT max(id) FROM {table}))"))
        return {"customers": customers, "products": products, "orders": orders, "order_lines": line_id}
    finally:
        eng.dispose()
