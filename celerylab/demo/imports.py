"""Contact import: a bound task that reports progress with ``update_state`` (unchanged between runs)."""

from __future__ import annotations

import csv
import io
import re
from typing import Any

from .app import app

EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
PROGRESS_EVERY = 100


@app.task(name="demo.imports.import_contacts", bind=True)
def import_contacts(self: Any, source_id: int, rows: int = 400) -> dict[str, Any]:
    """Parse an uploaded CSV, validate each row, report progress every ``PROGRESS_EVERY`` rows."""
    reader = csv.DictReader(io.StringIO(export_csv(source_id, rows)))
    valid = 0
    invalid: list[int] = []
    for i, row in enumerate(reader, 1):
        if EMAIL.fullmatch(row["email"]) and row["name"].strip():
            valid += 1
        else:
            invalid.append(i)
        if i % PROGRESS_EVERY == 0:
            self.update_state(state="PROGRESS", meta={"done": i, "total": rows})
    return {"source_id": source_id, "valid": valid, "invalid": len(invalid), "first_invalid": invalid[:5]}


def export_csv(source_id: int, rows: int) -> str:
    """The uploaded file (synthetic: every 17th address is malformed)."""
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["name", "email", "country"])
    for i in range(rows):
        email = f"user{source_id}-{i}@example.com" if i % 17 else f"user{source_id}-{i}.example.com"
        w.writerow([f"User {i}", email, ("DE", "FR", "US")[i % 3]])
    return out.getvalue()
