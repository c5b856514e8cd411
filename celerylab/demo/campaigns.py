"""E-mail campaigns.  **Planted regression (candidate):** :func:`encode_payload` renders pretty, key-sorted JSON
(``indent=2, sort_keys=True``), which sends every payload through :mod:`json`'s pure-Python encoder instead of the
C one, with a ``default=`` conversion per datetime, Decimal and UUID."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from .app import app, candidate

SIGNING_KEY = b"celerylab-demo-signing-key"


@app.task(name="demo.campaigns.send_batch")
def send_campaign_batch(campaign_id: int, recipients: int = 120) -> dict[str, Any]:
    """Build, serialise and sign one message per recipient (the hand-off to the mail relay)."""
    sent = 0
    size = 0
    digest = hashlib.sha256()
    for i in range(recipients):
        body = encode_payload(build_payload(campaign_id, i))
        digest.update(sign(body))
        size += len(body)
        sent += 1
    return {"campaign_id": campaign_id, "sent": sent, "bytes": size, "digest": digest.hexdigest()[:16]}


def build_payload(campaign_id: int, i: int) -> dict[str, Any]:
    """One recipient's message: merge variables, tracking ids, recommendations."""
    sent_at = datetime(2026, 3, 1, 9, 0, tzinfo=UTC) + timedelta(seconds=campaign_id * 1000 + i)
    return {
        "campaign": campaign_id,
        "message_id": uuid.UUID(int=(campaign_id << 32) | i),
        "to": {"email": f"customer{i}@example.com", "name": f"Customer {i:04d}", "locale": ("de", "en", "fr")[i % 3]},
        "subject": f"Your picks for week {campaign_id % 52 + 1}",
        "sent_at": sent_at,
        "vars": {"first_name": f"Name{i}", "points": Decimal(i * 37 % 1000) / 10, "tier": ("gold", "silver")[i % 2]},
        "recommendations": [
            {
                "sku": f"SKU-{(i * 7 + k) % 40 + 1:05d}",
                "price": Decimal((i * 13 + k * 101) % 5000) / 100,
                "score": round(1 / (k + 1), 4),
                "tags": ["new", "sale"][: k % 3],
            }
            for k in range(6)
        ],
        "tracking": {"open_pixel": f"https://t.example.com/o/{campaign_id}/{i}", "utm": {"source": "email"}},
    }


def _to_jsonable(o: Any) -> Any:
    if isinstance(o, datetime):
        return o.isoformat()
    if isinstance(o, Decimal | uuid.UUID):
        return str(o)
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")


def encode_payload(payload: dict[str, Any]) -> bytes:
    """The message body as UTF-8 JSON."""
    if candidate():
        # "Readable" payloads for debugging: indent/sort_keys force the pure-Python encoder.
        return json.dumps(payload, indent=2, sort_keys=True, default=_to_jsonable).encode()
    return json.dumps(payload, separators=(",", ":"), default=_to_jsonable).encode()


def sign(body: bytes) -> bytes:
    """HMAC-SHA256 signature the relay checks."""
    return hmac.new(SIGNING_KEY, body, hashlib.sha256).digest()
