"""What kind of work a function does: one category per function, and each task's time per category.

The mapping is one table, :data:`CATEGORY_RULES`: a function's ``module`` (as the loader derived it — for C
builtins the module of the method's class or function, e.g. ``<method 'execute' of 'sqlite3.Cursor' objects>`` has
module ``sqlite3``) is matched against the module prefixes below; the **longest** matching prefix wins, so
``kombu.serialization`` is serialization although ``kombu`` is celery overhead.  A prefix matches a whole dotted
component: ``json`` matches ``json`` and ``json.encoder`` but not ``jsonschema``.  A leading underscore of the top
component is ignored (``_json``, ``_pickle``, ``_socket``, ``_ssl``, ``_sqlite3`` are their public modules).

Functions no rule claims fall back on their ``kind``: ``stdlib`` (and builtins of the standard library, e.g.
``builtins.len``) → ``stdlib``; ``third-party`` (and builtins of C extensions outside the standard library) →
``third-party``; ``app`` → ``app``.

Categories are about *exclusive* time: a task's time per category is the sum of the ``tottime`` of its functions,
so the categories of a task add up to its total time and nothing is counted twice.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..errors import ColumnNotFound

if TYPE_CHECKING:
    from ..core.data import ProfileData

#: Every category, in display order.
CATEGORIES: tuple[str, ...] = ("db", "network", "serialization", "celery", "stdlib", "third-party", "app")

#: category -> module prefixes (dotted, whole components).  Edit here, nowhere else.
CATEGORY_RULES: dict[str, tuple[str, ...]] = {
    # SQL drivers, ORMs and database clients: time spent talking to / preparing for a database.
    "db": (
        "sqlite3",
        "psycopg",
        "psycopg2",
        "psycopg_c",
        "psycopg_binary",
        "psycopg_pool",
        "pymysql",
        "MySQLdb",
        "mysql.connector",
        "asyncpg",
        "pg8000",
        "cx_Oracle",
        "oracledb",
        "pyodbc",
        "sqlalchemy",
        "django.db",
        "peewee",
        "pony.orm",
        "tortoise",
        "databases",
        "pymongo",
        "motor",
        "bson",
        "cassandra",
        "clickhouse_driver",
    ),
    # Sockets, TLS, HTTP clients, brokers' wire protocols, and waiting on I/O.
    "network": (
        "socket",
        "ssl",
        "select",
        "selectors",
        "http.client",
        "urllib.request",
        "urllib3",
        "requests",
        "httpx",
        "httpcore",
        "h11",
        "h2",
        "aiohttp",
        "dns",
        "redis",
        "amqp",
        "pika",
        "botocore",
        "boto3",
        "grpc",
        "websocket",
        "websockets",
        "smtplib",
        "ftplib",
        "asyncio.selector_events",
    ),
    # Turning objects into bytes / text and back.
    "serialization": (
        "json",
        "simplejson",
        "orjson",
        "ujson",
        "rapidjson",
        "pickle",
        "copyreg",
        "marshal",
        "msgpack",
        "yaml",
        "csv",
        "xml",
        "lxml",
        "kombu.serialization",
        "kombu.utils.json",
        "google.protobuf",
        "cbor2",
    ),
    # The task framework around the task body (and celerylab's own capture hooks, which run inside it).
    "celery": ("celery", "kombu", "billiard", "vine", "celerylab.capture"),
}

_STDLIB_TOP = frozenset(sys.stdlib_module_names) | {"builtins", "__main__"}


def _norm(module: str) -> str:
    return module[1:] if module.startswith("_") and not module.startswith("__") else module


def category_of(module: str, kind: str) -> str:
    """The category of one function given its ``module`` and ``kind`` (see the module docstring)."""
    mod = _norm(str(module or ""))
    best, best_len = None, -1
    for cat, prefixes in CATEGORY_RULES.items():
        for p in prefixes:
            if (mod == p or mod.startswith(p + ".")) and len(p) > best_len:
                best, best_len = cat, len(p)
    if best is not None:
        return best
    kind = str(kind)
    if kind == "builtin":
        top = mod.split(".", 1)[0]
        return "stdlib" if (top in _STDLIB_TOP or not top) else "third-party"
    if kind in ("stdlib", "third-party", "app"):
        return kind
    return "app"


def function_categories(ps: ProfileData) -> pd.Series:
    """``func_id -> category`` for every function of ``ps.functions`` (a categorical Series indexed by func_id)."""
    cache = ps.__dict__.get("_celerylab_categories")
    if cache is not None and len(cache) == len(ps.functions):
        return cache
    f = ps.functions
    pairs = pd.DataFrame({"module": f["module"].astype(object).fillna(""), "kind": f["kind"].astype(object)})
    uniq = pairs.drop_duplicates()
    lookup = {(m, k): category_of(m, k) for m, k in zip(uniq["module"].tolist(), uniq["kind"].tolist())}
    cats = [lookup[(m, k)] for m, k in zip(pairs["module"].tolist(), pairs["kind"].tolist())]
    out = pd.Series(pd.Categorical(cats, categories=list(CATEGORIES)), index=f["func_id"].to_numpy(), name="category")
    ps.__dict__["_celerylab_categories"] = out
    return out


def categorize(ps: ProfileData) -> pd.DataFrame:
    """``ps.functions`` with a ``category`` column: ``func_id, label, name, module, kind, category``."""
    f = ps.functions
    out = f[["func_id", "label", "name", "module", "kind"]].copy()
    out["category"] = function_categories(ps).to_numpy()
    return out


def category_shares(ps: ProfileData, by: str | list[str] | None = "task_name") -> pd.DataFrame:
    """Each group's exclusive time per category.

    One row per (``by`` values, category) that has time: ``<by…>, category, profiles`` (invocations in the group),
    ``tottime`` (seconds summed over the group), ``tottime_mean`` (per invocation: ``tottime / profiles``) and
    ``share`` (of the group's total exclusive time; the shares of a group sum to 1).  ``by=None``: one group, the
    whole selection.  Rows are ordered by group, then by ``CATEGORIES``.
    """
    cols = [] if by is None else ([by] if isinstance(by, str) else list(by))
    p = ps.profiles
    for c in cols:
        if c not in p.columns:
            raise ColumnNotFound(
                f"category_shares(by={c!r}): no such column in profiles; columns are {list(p.columns)}"
            )
    out_cols = [*cols, "category", "profiles", "tottime", "tottime_mean", "share"]
    if not len(p) or not len(ps.stats):
        return pd.DataFrame(columns=out_cols)
    if cols:
        gkeys = p[cols].astype(object).where(p[cols].notna(), None)
        gcode, guniq = (
            pd.factorize(pd.MultiIndex.from_frame(gkeys), sort=True)
            if len(cols) > 1
            else pd.factorize(gkeys[cols[0]], sort=True, use_na_sentinel=False)
        )
    else:
        gcode, guniq = np.zeros(len(p), dtype=np.int64), pd.Index([None])
    n_groups = len(guniq)
    pid_to_group = np.full(int(max(p["profile_id"].max(), ps.stats["profile_id"].max())) + 1, -1, dtype=np.int64)
    pid_to_group[p["profile_id"].to_numpy()] = gcode
    cat_codes = function_categories(ps).cat.codes
    fcat = np.zeros(int(ps.functions["func_id"].max()) + 1, dtype=np.int64)
    fcat[cat_codes.index.to_numpy()] = cat_codes.to_numpy()
    s = ps.stats
    g = pid_to_group[s["profile_id"].to_numpy()]
    ok = g >= 0
    nc = len(CATEGORIES)
    key = g[ok] * nc + fcat[s["func_id"].to_numpy()[ok]]
    tot = np.bincount(key, weights=s["tottime"].to_numpy()[ok], minlength=n_groups * nc).reshape(n_groups, nc)
    nprof = np.bincount(gcode, minlength=n_groups)
    gtot = tot.sum(axis=1)
    gi, ci = np.nonzero(tot != 0)
    data: dict[str, object] = {}
    if cols:
        if len(cols) > 1:
            vals = [guniq[i] for i in gi]
            for j, c in enumerate(cols):
                data[c] = [v[j] for v in vals]
        else:
            data[cols[0]] = np.asarray(guniq, dtype=object)[gi]
    data["category"] = pd.Categorical(np.asarray(CATEGORIES, dtype=object)[ci], categories=list(CATEGORIES))
    data["profiles"] = nprof[gi]
    data["tottime"] = tot[gi, ci]
    data["tottime_mean"] = tot[gi, ci] / np.maximum(nprof[gi], 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        data["share"] = np.where(gtot[gi] != 0, tot[gi, ci] / gtot[gi], np.nan)
    return pd.DataFrame(data, columns=out_cols)
