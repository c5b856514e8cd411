"""Capture on the producer side: profiled publishing and the timing header.

:func:`install_producer` patches, once per process and for every Celery app in it, the calls that publish tasks:
``Task.delay``, ``Task.apply_async``, ``Celery.send_task`` and the ``apply_async`` of signatures, chains, groups
and chords.  The outermost of those calls is one *publish*: it is sampled once (``sample_rate``, ``tasks`` globs);
a sampled publish runs under cProfile and writes the same file pair as a worker task, with ``role: "producer"``,
the task name and id, queue (routing key), exchange, broker transport, message count and size, and the publish's
wall time.  Every published message, sampled or not, carries the publish time and producer in its headers
(:mod:`._timing`), from which the worker computes queue wait.

Capture never breaks a publish: an error of ours is counted and logged once; the publish's own exception is
recorded and re-raised unchanged.  A publish made while another profiler runs on the thread (a task that calls
other tasks, in a worker that profiles it) is counted as ``skipped_busy``: the worker's profile holds it.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import json
import logging
import os
import random
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from celery import signals

from .._files import SCHEMA, publish_stem
from . import _profile, _redact, _timing, _writer
from ._base import Counts, Recorder, text_of

logger = logging.getLogger("celerylab.capture")

#: the publish in progress in this context: None outside one, else its record (a dict; ``{}`` when sampled out)
_current: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("celerylab_publish", default=None)


@dataclass
class ProducerCounts(Counts):
    """Per-process counters of the producer side: the worker side's, and every publish seen."""

    publishes: int = 0


class ProducerCapture(Recorder):
    """A live producer-side installation; :meth:`uninstall` restores every patched call.  See
    :func:`install_producer`."""

    affects = "publish"
    counts: ProducerCounts

    def __init__(self, directory: str | os.PathLike[str] | None, *, sample_rate: float = 1.0,
                 tasks: str | list[str] | tuple[str, ...] | None = None, run: str | None = None,
                 max_files: int | None = None, max_bytes: int | None = None, headers: bool = True) -> None:  # fmt: skip
        if directory is None and float(sample_rate) > 0:
            raise ValueError("a directory is needed to write profiles (or sample_rate=0 for the timing header only)")
        super().__init__(directory, sample_rate=sample_rate, tasks=tasks, run=run, max_files=max_files,
                         max_bytes=max_bytes, counts=ProducerCounts())  # fmt: skip
        self.headers = bool(headers)

    def __repr__(self) -> str:
        return f"<celerylab ProducerCapture {self.directory!r} sample_rate={self.sample_rate} tasks={self.tasks}>"

    # --------------------------------------------------------------------------------------------- publishing
    def publish(self, kind: str, name: str, app: Any, call: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Run one outermost publish call, profiled if it is sampled."""
        self.counts.publishes += 1
        sampled = (self.sample_rate > 0 and self._wanted(name)
                   and (self.sample_rate >= 1.0 or random.random() < self.sample_rate))  # fmt: skip
        if not sampled:
            self.counts.sampled_out += 1
            token = _current.set({})
            try:
                return call(*args, **kwargs)
            finally:
                _current.reset(token)
        return self._profiled(kind, name, app, call, args, kwargs)

    def _profiled(self, kind: str, name: str, app: Any, call: Any, args: tuple[Any, ...],
                  kwargs: dict[str, Any]) -> Any:  # fmt: skip
        record: dict[str, Any] = {"messages": 0, "message_bytes": 0}
        token = _current.set(record)
        wall0, perf0, cpu0 = time.time(), time.perf_counter(), time.thread_time()
        prof = _profile.start()
        if prof is None:
            self.counts.skipped_busy += 1
        result: Any = None
        error: BaseException | None = None
        try:
            result = call(*args, **kwargs)
            return result
        except BaseException as e:
            error = e
            raise
        finally:
            if prof is not None:
                _profile.stop(prof)
            perf1, cpu1, wall1 = time.perf_counter(), time.thread_time(), time.time()
            _current.reset(token)
            if prof is not None:
                try:
                    self.counts.profiled += 1
                    meta = self._sidecar(kind, name, app, record, result, error, wall0, wall1, perf1 - perf0,
                                         cpu1 - cpu0)  # fmt: skip
                    self._write(meta, prof)
                except Exception as e:
                    self._fail("writing the publish profile", e)

    def on_before_publish(self, sender: Any = None, body: Any = None, exchange: Any = None, routing_key: Any = None,
                          headers: Any = None, **_: Any) -> None:  # fmt: skip
        """``before_task_publish``: stamp the timing header; within a sampled publish, note where it goes."""
        try:
            if self.headers:
                _timing.stamp_published(headers)
            record = _current.get()
            if record is None or "messages" not in record:
                return
            record["messages"] += 1
            if record["messages"] == 1:
                record["queue"] = routing_key
                record["exchange"] = exchange if isinstance(exchange, str) else getattr(exchange, "name", None)
                record["first_task_id"] = headers.get("id") if isinstance(headers, dict) else None
            with contextlib.suppress(TypeError, ValueError):
                record["message_bytes"] += len(json.dumps(body, default=repr).encode("utf-8"))
        except Exception as e:
            self._fail("before_task_publish", e)

    # ---------------------------------------------------------------------------------------------- writing
    def _sidecar(self, kind: str, name: str, app: Any, record: dict[str, Any], result: Any,
                 error: BaseException | None, wall0: float, wall1: float, wall_s: float,
                 cpu_s: float) -> dict[str, Any]:  # fmt: skip
        task_id = getattr(result, "id", None) or record.get("first_task_id") or f"unsent-{os.urandom(8).hex()}"
        meta: dict[str, Any] = {
            "schema": SCHEMA,
            "role": "producer",
            "task_id": str(task_id),
            "task_name": name,
            "publish_kind": kind,
            "state": "SENT" if error is None else "FAILURE",
            "started_at": datetime.fromtimestamp(wall0, UTC).isoformat(),
            "finished_at": datetime.fromtimestamp(wall1, UTC).isoformat(),
            "wall_s": round(wall_s, 9),
            "publish_s": round(wall_s, 9),
            "cpu_s": round(cpu_s, 9),
            "cpu_scope": "thread",
            "hostname": socket.gethostname(),
            "pid": os.getpid(),
            "queue": record.get("queue"),
            "exchange": record.get("exchange"),
            "broker": _transport(app),
            "messages": record.get("messages", 0),
            "message_bytes": record.get("message_bytes", 0),
            "run": self.run,
            "sample_rate": self.sample_rate,
            **self._static,
        }
        if error is not None:
            # secrets masked before the cut, as on the worker side (a broker URL in a connection error)
            message = _redact.DEFAULT.sub(text_of(error))[:1000]
            meta["exception"] = {"type": _qualname(type(error)), "message": message}
        return meta

    def _write(self, meta: dict[str, Any], prof: Any) -> None:
        assert self.directory is not None
        data = _profile.dump(prof)
        side = json.dumps(meta, ensure_ascii=False, default=str).encode("utf-8")
        self._written(_writer.write_pair(self.directory, publish_stem(meta["task_name"], meta["task_id"]), side, data))

    # ------------------------------------------------------------------------------------------- lifecycle
    def _install(self) -> None:
        self._prepare_directory()
        signals.before_task_publish.connect(self.on_before_publish, weak=False, dispatch_uid=_UID)
        _patch()

    def uninstall(self) -> None:
        """Restore the patched calls and stop stamping headers."""
        global _active
        signals.before_task_publish.disconnect(dispatch_uid=_UID)
        _unpatch()
        if _active is self:
            _active = None


def _transport(app: Any) -> str | None:
    """The broker transport's name (``redis``, ``amqp``…) from the app's broker URL: never the URL itself, which
    may hold a password."""
    try:
        conf = getattr(app, "conf", None)
        url = getattr(conf, "broker_url", None) or ""
        first = url.split(";")[0] if isinstance(url, str) else ""
        return urlsplit(first).scheme or getattr(conf, "broker_transport", None) or None
    except Exception:
        return None


def _qualname(cls: type) -> str:
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


# ------------------------------------------------------------------------------------------------ patching
_UID = "celerylab.capture.producer"
_active: ProducerCapture | None = None
_originals: dict[tuple[type, str], Any] = {}


def _name_of(kind: str, obj: Any, args: tuple[Any, ...]) -> tuple[str, Any]:
    """(task name, app) of a publish call on ``obj``."""
    if kind == "send_task":
        return (str(args[0]) if args else "?"), obj
    if kind in ("apply_async", "delay"):
        return str(getattr(obj, "name", "?")), getattr(obj, "_app", None) or getattr(obj, "app", None)
    # signatures: a plain one names its task; a chain, group or chord is named after its kind
    app = getattr(obj, "app", None)
    if kind == "signature":
        return str(obj.get("task", "?")), app
    return f"celery.{kind}", app


def _wrapper(kind: str, original: Any) -> Any:
    @functools.wraps(original)
    def publish(self: Any, *args: Any, **kwargs: Any) -> Any:
        cap = _active
        if cap is None or _current.get() is not None:  # not installed, or inside a publish already
            return original(self, *args, **kwargs)
        try:
            name, app = _name_of(kind, self, args)
        except Exception:
            name, app = "?", None
        return cap.publish(kind, name, app, original, (self, *args), kwargs)

    publish.__celerylab_original__ = original  # type: ignore[attr-defined]
    return publish


def _targets() -> list[tuple[type, str, str]]:
    from celery import canvas
    from celery.app.base import Celery
    from celery.app.task import Task

    return [
        (Task, "delay", "delay"),
        (Task, "apply_async", "apply_async"),
        (Celery, "send_task", "send_task"),
        (canvas.Signature, "apply_async", "signature"),
        (canvas._chain, "apply_async", "chain"),
        (canvas.group, "apply_async", "group"),
        (canvas._chord, "apply_async", "chord"),
    ]


def _patch() -> None:
    for cls, attr, kind in _targets():
        if (cls, attr) not in _originals:
            original = cls.__dict__[attr]
            _originals[(cls, attr)] = original
            setattr(cls, attr, _wrapper(kind, original))


def _unpatch() -> None:
    for (cls, attr), original in list(_originals.items()):
        setattr(cls, attr, original)
    _originals.clear()


def install_producer(directory: str | os.PathLike[str] | None, *, sample_rate: float = 1.0,
                     tasks: str | list[str] | tuple[str, ...] | None = None, run: str | None = None,
                     max_files: int | None = None, max_bytes: int | None = None,
                     headers: bool = True) -> ProducerCapture:  # fmt: skip
    """Profile publishing in this process, for every Celery app in it (no app change).

    ``sample_rate``: the fraction of matching publishes profiled (``0``: only stamp the timing header);
    ``tasks``: glob patterns on task names (``celery.group``/``celery.chain``/``celery.chord`` for canvases);
    ``run``: a label (default ``$CELERYLAB_RUN``); ``max_files``/``max_bytes``: retention caps for the directory;
    ``headers``: stamp every published message with its publish time and producer, so that workers can compute
    queue wait.  Installing again replaces the earlier installation.  Returns the handle; ``uninstall()`` stops it.
    """
    global _active
    cap = ProducerCapture(directory, sample_rate=sample_rate, tasks=tasks, run=run, max_files=max_files,
                          max_bytes=max_bytes, headers=headers)  # fmt: skip
    if _active is not None:
        _active.uninstall()
    cap._install()
    _active = cap
    return cap


def active_producer() -> ProducerCapture | None:
    """The producer-side installation live in this process, if any."""
    return _active
