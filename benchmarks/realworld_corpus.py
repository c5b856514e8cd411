"""A corpus of real-world cProfile dumps of varied programs, generated on demand (never committed).

    .venv/bin/python benchmarks/realworld_corpus.py /tmp/rw 300      # 300 profiles into /tmp/rw

Four families, each generated in its own fresh interpreter (one profile per unit of work, ``dump_stats`` as
``python -m cProfile -o`` writes it):

* ``stdlib`` — CPython's own test modules (``test.test_json``, ``test_re``, ``test_datetime`` …), their test cases
  run in slices of a few cases per profile: large, deep profiles with thousands of functions;
* ``pandas`` — DataFrame operations (groupby, merge, pivot, CSV parsing, resampling, string methods, rolling) on
  data of varying size;
* ``django`` — Django request cycles through the test client (URL routing, middleware, template rendering, forms,
  JSON responses), one profile per request, as django-silk or a profiling middleware would write them;
* ``celery`` — Celery and kombu at work in-process: eager task calls, canvas (chain, group), kombu publish and
  consume over the in-memory transport.  (celery's and kombu's own test suites are not shipped in their wheels, so
  their code is profiled running rather than testing itself.)

Used by ``bench_load.py`` and ``bench_analysis.py`` (``--corpus real``); the files are what any user's folder of
profiles from other tools looks like: no sidecars, names the loader does not know.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import subprocess
import sys
import time
from pathlib import Path

FAMILIES = ("stdlib", "pandas", "django", "celery")

STDLIB_MODULES = (
    "test.test_json", "test.test_re", "test.test_textwrap", "test.test_string", "test.test_csv",
    "test.test_collections", "test.test_heapq", "test.test_bisect", "test.test_fractions", "test.test_enum",
    "test.test_dataclasses", "test.test_functools", "test.test_pprint", "test.test_difflib", "test.test_base64",
    "test.test_struct", "test.test_operator", "test.test_datetime", "test.test_decimal", "test.test_statistics",
    "test.test_shlex", "test.test_html", "test.test_htmlparser", "test.test_urlparse", "test.test_ipaddress",
    "test.test_configparser", "test.test_argparse", "test.test_calendar", "test.test_email.test_email",
)  # fmt: skip


class _Writer:
    def __init__(self, out: str, family: str) -> None:
        self.out, self.family, self.i = out, family, 0

    def profile(self, fn, *args) -> None:  # type: ignore[no-untyped-def]
        p = cProfile.Profile()
        p.enable()
        try:
            fn(*args)
        except Exception:
            pass
        finally:
            p.disable()
        p.dump_stats(os.path.join(self.out, f"{self.family}-{self.i:05d}.prof"))
        self.i += 1


def _stdlib(w: _Writer, count: int) -> None:
    import unittest

    def flatten(suite):  # type: ignore[no-untyped-def]
        for t in suite:
            if isinstance(t, unittest.TestSuite):
                yield from flatten(t)
            else:
                yield t

    slices = []
    for name in STDLIB_MODULES:
        try:
            tests = list(flatten(unittest.defaultTestLoader.loadTestsFromName(name)))
        except Exception:
            continue
        step = max(1, len(tests) // 6)
        slices.extend(tests[i : i + step] for i in range(0, len(tests), step))
    runner = unittest.TextTestRunner(stream=io.StringIO(), verbosity=0)
    for k in range(count):
        cases = slices[(k * 7) % len(slices)]
        w.profile(runner.run, unittest.TestSuite(cases))


def _pandas(w: _Writer, count: int) -> None:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(3)

    def frame(n: int) -> pd.DataFrame:
        t = pd.date_range("2026-01-01", periods=n, freq="min")
        return pd.DataFrame({"k": rng.integers(0, 50, n), "g": rng.choice(list("abcdefgh"), n),
                             "x": rng.normal(size=n), "t": t})  # fmt: skip

    ops = [
        lambda df: df.groupby(["k", "g"]).agg(x_mean=("x", "mean"), x_max=("x", "max")),
        lambda df: df.merge(df.groupby("k", as_index=False)["x"].sum(), on="k", suffixes=("", "_sum")),
        lambda df: df.pivot_table(index="k", columns="g", values="x", aggfunc="median"),
        lambda df: pd.read_csv(io.StringIO(df.to_csv(index=False)), parse_dates=["t"]),
        lambda df: df.set_index("t")["x"].resample("1h").agg(["mean", "std", "count"]),
        lambda df: df["g"].str.upper().str.cat(df["k"].astype(str), sep="-").value_counts(),
        lambda df: df.sort_values(["g", "x"]).groupby("g")["x"].rolling(20).mean(),
        lambda df: df.assign(r=df.groupby("g")["x"].rank(), q=pd.qcut(df["x"], 10, labels=False)).describe(),
    ]
    for k in range(count):
        df = frame(int(500 * (1 + k % 9)))
        w.profile(ops[k % len(ops)], df)


def _django(w: _Writer, count: int) -> None:
    import django
    from django.conf import settings

    settings.configure(
        DEBUG=False, ALLOWED_HOSTS=["testserver"], ROOT_URLCONF=__name__, SECRET_KEY="bench",
        MIDDLEWARE=["django.middleware.common.CommonMiddleware", "django.middleware.csrf.CsrfViewMiddleware",
                    "django.middleware.clickjacking.XFrameOptionsMiddleware"],
        TEMPLATES=[{"BACKEND": "django.template.backends.django.DjangoTemplates", "DIRS": [], "APP_DIRS": False}],
        INSTALLED_APPS=[], DATABASES={}, USE_TZ=True,
    )  # fmt: skip
    django.setup()
    from django import forms
    from django.http import JsonResponse
    from django.template import engines
    from django.test import Client
    from django.urls import path

    page = engines["django"].from_string(
        "<html><body><h1>{{ title|title }}</h1><ul>{% for r in rows %}<li class='{% cycle 'a' 'b' %}'>"
        "{{ r.name|upper }} {{ r.value|floatformat:2 }} {{ r.when|date:'Y-m-d' }}</li>{% endfor %}</ul></body></html>"
    )

    class OrderForm(forms.Form):
        email = forms.EmailField()
        qty = forms.IntegerField(min_value=1, max_value=100)
        note = forms.CharField(max_length=200, required=False)

    import datetime

    def listing(request, n):  # type: ignore[no-untyped-def]
        from django.http import HttpResponse

        rows = [{"name": f"item {i}", "value": i / 7, "when": datetime.date(2026, 1, 1 + i % 28)} for i in range(n)]
        return HttpResponse(page.render({"title": "orders", "rows": rows}, request))

    def api(request, n):  # type: ignore[no-untyped-def]
        return JsonResponse({"items": [{"id": i, "tags": [str(i), "x"]} for i in range(n)]})

    def order(request):  # type: ignore[no-untyped-def]
        f = OrderForm(request.POST or {"email": "a@example.com", "qty": "3"})
        return JsonResponse({"ok": f.is_valid(), "errors": f.errors.get_json_data()})

    module = sys.modules[__name__]
    module.urlpatterns = [  # type: ignore[attr-defined]
        path("list/<int:n>/", listing),
        path("api/<int:n>/", api),
        path("order/", order),
    ]
    client = Client(enforce_csrf_checks=False)
    client.get("/list/1/")  # first request imports lazily: not a request cycle
    urls = [lambda k: client.get(f"/list/{10 + k % 90}/"), lambda k: client.get(f"/api/{5 + k % 200}/"),
            lambda k: client.post("/order/", {"email": "x@example.com" if k % 3 else "bad", "qty": str(k % 120)}),
            lambda k: client.get("/missing/")]  # fmt: skip
    for k in range(count):
        w.profile(urls[k % len(urls)], k)


def _celery(w: _Writer, count: int) -> None:
    from celery import Celery, chain, group
    from kombu import Connection, Exchange, Queue

    app = Celery("bench", broker="memory://", backend="cache+memory://")
    app.conf.task_always_eager = True
    app.conf.task_eager_propagates = False

    @app.task
    def add(x, y):  # type: ignore[no-untyped-def]
        return x + y

    @app.task
    def summarise(values):  # type: ignore[no-untyped-def]
        return sorted(values)[len(values) // 2]

    exchange = Exchange("bench", type="direct")
    queue = Queue("bench", exchange, routing_key="bench")

    def kombu_roundtrip(n: int) -> None:
        with Connection("memory://") as conn:
            producer = conn.Producer(serializer="json")
            for i in range(n):
                producer.publish({"i": i, "body": "x" * (i % 50)}, exchange=exchange, routing_key="bench",
                                 declare=[queue])  # fmt: skip
            got = []
            with conn.Consumer(queue, callbacks=[lambda body, msg: (got.append(body), msg.ack())]):
                while len(got) < n:
                    conn.drain_events(timeout=1)

    work = [
        lambda k: [add.delay(i, k).get() for i in range(5 + k % 20)],
        lambda k: chain(add.s(1, 2), add.s(k), add.s(3))().get(),
        lambda k: group(add.s(i, i) for i in range(3 + k % 10))().get(),
        lambda k: kombu_roundtrip(5 + k % 40),
        lambda k: summarise.apply(args=([float(i) for i in range(k % 50 + 1)],)).get(),
    ]
    for k in range(count):
        w.profile(work[k % len(work)], k)


def _family(name: str, out: str, count: int) -> None:
    w = _Writer(out, name)
    {"stdlib": _stdlib, "pandas": _pandas, "django": _django, "celery": _celery}[name](w, count)


def build(folder: str | Path, n: int, quiet: bool = False) -> list[str]:
    """``n`` real-world profiles in ``folder`` (kept there: generated again only when the count differs)."""
    folder = Path(folder)
    marker = folder / f".n{n}"
    if not marker.exists():
        import shutil

        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        t0 = time.perf_counter()
        shares = [n * 2 // 5, n // 5, n // 5]
        shares.append(n - sum(shares))
        for fam, k in zip(FAMILIES, shares):
            subprocess.run([sys.executable, __file__, "--family", fam, str(folder), str(k)], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        marker.touch()
        if not quiet:
            print(f"  generated {n} real-world profiles in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return sorted(str(p) for p in folder.glob("*.prof"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder")
    ap.add_argument("n", type=int)
    ap.add_argument("--family", choices=FAMILIES, help="(internal) generate one family in this process")
    args = ap.parse_args()
    if args.family:
        _family(args.family, args.folder, args.n)
    else:
        paths = build(args.folder, args.n)
        print(f"{len(paths)} profiles in {args.folder}")


if __name__ == "__main__":
    main()
