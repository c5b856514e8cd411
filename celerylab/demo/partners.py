"""A partner's HTTP API with latency, timeouts (retried) and hard errors (failures); unchanged between runs.

The network is simulated (``time.sleep`` for the round trip, a JSON body built locally), so the demo needs no
internet, but the retry/failure behaviour is real Celery: ``self.retry(countdown=0)`` re-queues the task."""

from __future__ import annotations

import json
import time
import zlib
from typing import Any

from .app import app

CURRENCIES = ("USD", "EUR", "GBP", "JPY", "CHF", "SEK", "NOK", "DKK", "PLN", "CZK", "HUF", "CAD", "AUD", "NZD")


class PartnerAPIError(Exception):
    """The partner answered with an error; not retried."""


class PartnerTimeout(PartnerAPIError):
    """The partner did not answer in time; retried."""


@app.task(name="demo.partners.fetch_rates", bind=True, max_retries=3)
def fetch_exchange_rates(
    self: Any, base: str, flaky: int = 0, broken: bool = False, latency_ms: int = 15
) -> dict[str, Any]:
    """Fetch exchange rates for ``base``.  The first ``flaky`` attempts time out (and are retried at once, up to
    ``max_retries``); ``broken`` makes the partner answer 502 (the task fails)."""
    try:
        body = call_partner_api(
            f"/v2/rates/{base}", attempt=self.request.retries, flaky=flaky, broken=broken, latency_ms=latency_ms
        )
    except PartnerTimeout as exc:
        raise self.retry(exc=exc, countdown=0) from exc
    return parse_rates(body)


def call_partner_api(path: str, *, attempt: int, flaky: int, broken: bool, latency_ms: int) -> bytes:
    """One HTTP round trip (simulated)."""
    time.sleep(latency_ms / 1000)
    if broken:
        raise PartnerAPIError(f"502 Bad Gateway from partner for GET {path}")
    if attempt < flaky:
        raise PartnerTimeout(f"GET {path} timed out after {latency_ms} ms (attempt {attempt + 1})")
    base = path.rsplit("/", 1)[-1]
    rates = {c: round(1 + zlib.crc32(f"{base}{c}".encode()) % 1000 / 997, 6) for c in CURRENCIES if c != base}
    return json.dumps({"base": base, "rates": rates, "ts": 1_767_225_600}).encode()


def parse_rates(body: bytes) -> dict[str, Any]:
    """Validate the partner's JSON and keep the fields we use."""
    doc = json.loads(body)
    rates = {k: float(v) for k, v in doc["rates"].items() if v > 0}
    return {"base": doc["base"], "count": len(rates), "max": max(rates.values())}
