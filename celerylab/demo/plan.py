"""The seeded task mix that the generator sends to each run (the same messages to both runs)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import UsageError
from .db import COUNTRIES

CURRENCIES = ("USD", "EUR", "GBP", "CHF", "JPY")
UNKNOWN_PRODUCT = 99_999
MAX_RETRIES = 3  # demo.partners.fetch_rates


@dataclass(frozen=True)
class Call:
    """One message: ``task`` with ``args``/``kwargs``, and what it will do in the worker."""

    task: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    #: profiled executions this message causes (1 + retries + group children)
    executions: int = 1
    #: ``success`` or ``failure`` (final state of this message's own task)
    outcome: str = "success"
    #: executions that end in RETRY
    retries: int = 0
    #: sent at once with the rest of its burst (a queue forms: more work than the workers can take)
    burst: bool = False


def _orders(rng: random.Random, fail: bool | None = None) -> Call:
    if fail is None:
        fail = rng.random() < 0.04  # an order naming a product that does not exist
    lines = [[rng.randint(1, 40), rng.randint(1, 3)] for _ in range(rng.randint(1, 4))]
    if fail:
        lines.append([UNKNOWN_PRODUCT, 1])
    coupon = rng.choice(("WELCOME10", "SPRING5")) if rng.random() < 0.2 else None
    return Call("demo.orders.process", (rng.randint(1, 300), lines), {"coupon": coupon},
                outcome="failure" if fail else "success")  # fmt: skip


def _reports(rng: random.Random) -> Call:
    return Call("demo.reports.build", (rng.choice(COUNTRIES),), {"limit": rng.randint(25, 35),
                                                                  "offset": rng.randint(0, 300)})  # fmt: skip


def _thumbnails(rng: random.Random) -> Call:
    return Call("demo.thumbnails.render", (rng.randint(1, 1_000_000),), {"size": rng.choice((64, 80))})


def _campaigns(rng: random.Random) -> Call:
    return Call("demo.campaigns.send_batch", (rng.randint(1, 5000),), {"recipients": rng.randint(80, 140)})


def _analytics(rng: random.Random) -> Call:
    return Call("demo.analytics.aggregate", (rng.randint(1, 10_000),), {"points": rng.randint(2000, 3500)})


def _partners(rng: random.Random, mode: str | None = None) -> Call:
    if mode is None:
        mode = rng.choices(("ok", "flaky1", "flaky2", "exhaust", "broken"), (70, 15, 7, 3, 5))[0]
    flaky = {"ok": 0, "flaky1": 1, "flaky2": 2, "exhaust": MAX_RETRIES + 2, "broken": 0}[mode]
    kwargs = {"flaky": flaky, "broken": mode == "broken", "latency_ms": rng.randint(5, 25)}
    retries = min(flaky, MAX_RETRIES)
    failed = mode in ("exhaust", "broken")
    return Call("demo.partners.fetch_rates", (rng.choice(CURRENCIES),), kwargs, executions=retries + 1,
                outcome="failure" if failed else "success", retries=retries)  # fmt: skip


def _fan_out(rng: random.Random, items: int | None = None) -> Call:
    n = items if items is not None else rng.randint(4, 8)
    return Call("demo.batch.fan_out", (rng.randint(1, 10_000),), {"items": n}, executions=n + 1)


def _imports(rng: random.Random) -> Call:
    return Call("demo.imports.import_contacts", (rng.randint(1, 10_000),), {"rows": rng.randint(200, 600)})


#: kind -> (weight in the random part of the mix, factory)
MIX = {
    "orders": (14, _orders),
    "reports": (12, _reports),
    "thumbnails": (12, _thumbnails),
    "campaigns": (10, _campaigns),
    "analytics": (10, _analytics),
    "partners": (14, _partners),
    "fan_out": (4, _fan_out),
    "imports": (6, _imports),
}
SINGLE = ("orders", "reports", "thumbnails", "campaigns", "analytics", "imports")


def _prelude(rng: random.Random) -> list[Call]:
    """One of everything, a retried call, two kinds of failure: present even in the smallest plan."""
    return [
        _orders(rng, fail=False), _reports(rng), _thumbnails(rng), _campaigns(rng), _analytics(rng), _imports(rng),
        _partners(rng, "ok"), _partners(rng, "flaky1"), _partners(rng, "broken"), _orders(rng, fail=True),
        _fan_out(rng, items=2),
    ]  # fmt: skip


MIN_EXECUTIONS = sum(c.executions for c in _prelude(random.Random(0)))


def burst_size(executions: int) -> int:
    """How many messages of a plan of ``executions`` are one burst: a sixth of the plan, at most 60 (none below
    :data:`MIN_EXECUTIONS` + 12)."""
    return min(60, executions // 6) if executions >= MIN_EXECUTIONS + 12 else 0


def build_plan(executions: int, seed: int = 7) -> list[Call]:
    """Messages that cause exactly ``executions`` profiled task executions, deterministic for ``seed``.

    Halfway through, :func:`burst_size` ``demo.imports.import_contacts`` messages form one burst (a bulk upload):
    the generator sends them at once, so a queue forms behind the two pool processes (the queue-wait episode of the
    samples).  The task is CPU-bound and takes no locks, so running two at a time does not change its run time."""
    if executions < MIN_EXECUTIONS:
        raise UsageError(f"a plan needs at least {MIN_EXECUTIONS} executions (one of each task, a retry, failures)")
    rng = random.Random(seed)
    n_burst = burst_size(executions)
    executions -= n_burst
    plan = _prelude(rng)
    total = sum(c.executions for c in plan)
    kinds = list(MIX)
    weights = [MIX[k][0] for k in kinds]
    while total < executions:
        kind = rng.choices(kinds, weights)[0]
        call = MIX[kind][1](rng)
        if total + call.executions > executions:
            call = MIX[rng.choice(SINGLE)][1](rng)
        plan.append(call)
        total += call.executions
    # The prelude is spread through the run rather than bunched at the start.
    rng.shuffle(plan)
    burst = [replace(_imports(rng), burst=True) for _ in range(n_burst)]
    half = len(plan) // 2
    return plan[:half] + burst + plan[half:]
