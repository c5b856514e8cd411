"""Capture in real deployments (issue 13), in-process through celery's real tracer: portable file names read back
exactly, receivers that never raise, secrets masked in every written file, one file set per attempt, honest
retention counts."""

from __future__ import annotations

import json
import os
import pstats
import uuid
from pathlib import Path
from typing import Any

import pytest
from celery import signals

import celerylab as cl
import celerylab.capture as capture
from celerylab._files import MAX_NAME, capture_stem
from celerylab.capture import _core, _redact, _writer

from . import inproc
from .tasks_common import _BadRepr, _Unprintable

U = "0b7d8e6a-3f2c-4e1a-9c5d-1234567890ab"
AWKWARD = [
    (".hidden.task", str(uuid.uuid4())),
    ("n" * 250, str(uuid.uuid4())),
    ("a:b/c", str(uuid.uuid4())),
    ("emoji.🚀", str(uuid.uuid4())),
    ("captest.long_id", "i" * 220),
]
_tasks: dict[str, Any] = {}


def _task(name: str) -> Any:
    if name not in _tasks:

        def body(n: int = 3) -> int:
            return sum(range(n))

        _tasks[name] = inproc.app.task(name=name)(body)
    return _tasks[name]


def _files(d: Path) -> list[Path]:
    return sorted(d.iterdir()) if d.exists() else []


# ------------------------------------------------------------------------------------------------- 2. file names
@pytest.mark.parametrize(("name", "tid"), [*AWKWARD, ("CON", U), ("日本語.タスク", U), ("café.crème", U)])
def test_capture_stem_is_portable_and_bounded(name, tid):
    stem = capture_stem(name, tid, retries=3, attempt=2)
    full = stem + ".prof"
    assert len(full) <= MAX_NAME and full.isascii()
    assert not full.startswith((".", "-")) and not set(full) & set(':/\\*?"<>|')
    assert stem.split(".", 1)[0].upper() != "CON"
    assert stem.endswith(".retry3.a2")
    assert capture_stem(name, tid + "x") != capture_stem(name, tid)  # distinct ids, distinct names


def test_changed_names_carry_a_hash_and_plain_ones_do_not():
    assert capture_stem("billing.charge", U) == f"billing.charge.{U}"
    # a:b and a/b both become a_b: the hash of the exact name keeps them apart
    assert capture_stem("a:b", U) != capture_stem("a/b", U)
    assert capture_stem("a:b", U).startswith("a_b.") and "~" in capture_stem("a:b", U)


def test_awkward_names_are_written_loaded_exactly_and_deleted_by_retention(install, tmp_path):
    out = tmp_path / "profiles"
    h = install()
    for name, tid in AWKWARD:
        _task(name).apply(task_id=tid)
    files = _files(out)
    assert len(files) == 2 * len(AWKWARD)
    for f in files:
        assert len(f.name) <= MAX_NAME and not f.name.startswith(".") and ":" not in f.name, f.name
    assert h.counts.written == len(AWKWARD) and h.counts.errors == 0
    # the loader reports the exact names and ids from the sidecars, and reads every file
    ps = cl.load(out, cache=False)
    assert len(ps.errors) == 0, ps.errors.to_dict("records")
    got = sorted(zip(ps.profiles["task_name"].astype(str), ps.profiles["task_id"].astype(str)))
    assert got == sorted(AWKWARD)
    for f in out.glob("*.prof"):  # and the standard library reads each profile
        assert pstats.Stats(str(f)).total_calls > 0
    # retention deletes them (oldest first) like any other profile
    past = 1_000_000_000
    for f in files:
        os.utime(f, (past, past))
    h.uninstall()
    h2 = install(max_files=2)
    for i in range(3):
        inproc.run(inproc.work, i)
    left = _files(out)
    assert not [f for f in left if f in files], [f.name for f in left]
    # cap 2, trimmed to 90 %: the first write deletes the five awkward ones, the third two work profiles
    assert len(list(out.glob("*.prof"))) == 1 and h2.counts.deleted == len(AWKWARD) + 2


def test_a_hidden_profile_in_a_folder_is_loaded_not_skipped(install, tmp_path):
    out = tmp_path / "profiles"
    install()
    r = inproc.run(inproc.work, 5)
    for f in out.iterdir():  # as another tool (or an older capture) may have named it
        f.rename(out / f".{f.name}")
    (out / ".gitignore").write_text("*\n")  # a hidden file that is no profile stays out, as before
    ps = cl.load(out, cache=False)
    assert list(ps.profiles["task_id"].astype(str)) == [r.id] and len(ps.errors) == 0


# -------------------------------------------------------------------------------------------- 3. guarded receivers
@inproc.app.task(name="inproc.unprintable")
def unprintable() -> None:
    raise _Unprintable()


@inproc.app.task(name="inproc.bad_result")
def bad_result(x: Any = None) -> Any:
    return _BadRepr()


def _meta(out: Path, tid: str) -> dict[str, Any]:
    (side,) = [p for p in out.glob("*.json") if tid in p.name]
    return json.loads(side.read_text(encoding="utf-8"))


def test_exception_whose_str_and_repr_raise_is_recorded_with_a_note(install, tmp_path):
    h = install()
    r = inproc.run(unprintable)
    assert r.failed()
    meta = _meta(tmp_path / "profiles", r.id)
    assert meta["state"] == "FAILURE"
    assert meta["exception"] == {
        "type": f"{_Unprintable.__module__}._Unprintable",
        "message": "<unprintable _Unprintable>",
    }
    assert any("exception message not recorded" in n for n in meta["notes"])
    assert h.counts.errors == 0


def test_results_and_arguments_whose_repr_raises(install, tmp_path):
    h = install(record_args=True)
    r = inproc.run(bad_result, _BadRepr())
    assert isinstance(r.get(), _BadRepr)
    meta = _meta(tmp_path / "profiles", r.id)
    assert meta["args"]["args"][0].startswith("<_BadRepr instance at 0x")  # reprlib's stand-in
    assert h.counts.errors == 0


def test_unencodable_sidecar_keeps_what_could_be_recorded(install, tmp_path, monkeypatch):
    h = install()
    real = _core.Capture._sidecar

    def with_a_cycle(self: Any, *a: Any, **k: Any) -> dict[str, Any]:
        meta = real(self, *a, **k)
        loop: list[Any] = []
        loop.append(loop)  # json cannot encode a cycle
        meta["run"] = loop
        return meta

    monkeypatch.setattr(_core.Capture, "_sidecar", with_a_cycle)
    r = inproc.run(inproc.work, 4)
    assert r.get() == 6
    meta = _meta(tmp_path / "profiles", r.id)
    assert "run" not in meta and meta["task_id"] == r.id and meta["state"] == "SUCCESS"
    assert meta["notes"] == ["run not recorded: ValueError: Circular reference detected"]
    assert h.counts.errors == 0 and h.counts.written == 1


@pytest.mark.parametrize(
    "receiver",
    ["_on_prerun", "_on_postrun", "_on_failure", "_on_retry", "_on_revoked", "_on_worker_init", "_on_shutdown"],
)
def test_no_exception_leaves_a_receiver(install, receiver):
    # arguments as hostile as a broken celery or app could send: objects whose every attribute and str() raise
    class Hostile:
        def __getattr__(self, name: str) -> Any:
            raise RuntimeError(f"no {name}")

        def __str__(self) -> str:
            raise RuntimeError("str")

        __repr__ = __str__

        def __eq__(self, other: object) -> bool:
            raise RuntimeError("eq")

        __hash__ = None  # type: ignore[assignment]

    h = install()
    fn = getattr(h, receiver)
    fn(sender=Hostile(), task_id=Hostile(), task=Hostile(), args=Hostile(), kwargs=Hostile(), exception=Hostile(),
       request=Hostile(), reason=Hostile(), retval=Hostile(), state=Hostile())  # fmt: skip


def test_receiver_failures_are_counted_while_a_task_runs(install, tmp_path):
    # a failure signal while the task is profiled, with an exception whose type name cannot even be read
    h = install()
    seen: list[Any] = []

    @inproc.app.task(name="inproc.hostile_failure")
    def hostile_failure() -> int:
        t = h._current.get()
        seen.append(t)
        signals.task_failure.send(sender=None, task_id=t.task_id, exception=_Unprintable())
        return 1

    r = inproc.run(hostile_failure)
    assert r.get() == 1 and seen[0] is not None
    assert _meta(tmp_path / "profiles", r.id)["exception"]["message"] == "<unprintable _Unprintable>"


# ------------------------------------------------------------------------------------------------- 4. secrets
SECRETS = [
    # (argument, the secret, a non-secret part that must remain)
    ("postgresql://app:PGPASSWORD1@db.internal:5432/orders", "PGPASSWORD1", "postgresql://app:"),
    ("redis://:REDISPW2@cache:6379/0", "REDISPW2", "@cache:6379/0"),
    ({"Authorization": "Bearer BEARERTOKEN3xyz", "Accept": "json"}, "BEARERTOKEN3xyz", "'Accept': 'json'"),
    ("Authorization: Basic QkFTSUNDUkVENA==", "QkFTSUNDUkVENA==", "Authorization"),
    ("curl -H 'X: 1' --header Bearer BEARER5abcdef", "BEARER5abcdef", "curl -H"),
    ("connect(host=db, password=PWINREPR6, port=5)", "PWINREPR6", "port=5"),
    ("https://api.example.com/v1?token=TOKENQS7&page=2", "TOKENQS7", "page=2"),
    ("key id AKIAIOSFODNN7EXAMPL8 in use", "IOSFODNN7EXAMPL8", "key id AKIA"),
    ({"nested": {"api_key": "APIKEY9"}, "page": 3}, "APIKEY9", "'page': 3"),
]


class _Conf:
    """A dataclass-like object whose repr shows its secret fields."""

    def __init__(self, user: str, secret: str, host: str) -> None:
        self.user, self.secret, self.host = user, secret, host

    def __repr__(self) -> str:
        return f"Conf(user={self.user!r}, secret={self.secret!r}, host={self.host!r})"


def _written_text(out: Path) -> str:
    return "\n".join(p.read_bytes().decode("utf-8", "replace") for p in out.iterdir())


@pytest.mark.parametrize(("value", "secret", "kept"), SECRETS, ids=[s[1] for s in SECRETS])
def test_secret_in_an_argument_is_in_no_written_file(install, tmp_path, value, secret, kept):
    install(record_args=True)
    r = inproc.run(inproc.secret, value, headers={"h": value})
    assert r.successful()
    out = tmp_path / "profiles"
    text = _written_text(out)
    assert secret not in text
    meta = _meta(out, r.id)
    assert kept in meta["args"]["args"][0] and kept in meta["args"]["kwargs"]["headers"]


def test_secret_in_a_dataclass_repr_and_in_secret_named_kwargs(install, tmp_path):
    install(record_args=True)
    r = inproc.run(inproc.secret, _Conf("bob", "CONFSECRET10", "db1"), password="KWPASSWORD11")
    out = tmp_path / "profiles"
    text = _written_text(out)
    assert "CONFSECRET10" not in text and "KWPASSWORD11" not in text
    meta = _meta(out, r.id)
    assert meta["args"]["args"] == ["Conf(user='bob', secret='***', host='db1')"]
    assert meta["args"]["kwargs"]["password"] == "<redacted>"


def test_long_argument_is_masked_before_it_is_shortened(install, tmp_path):
    install(record_args=True)
    long = "x" * 150 + " postgresql://app:LONGSECRET12@db/x " + "y" * 300
    r = inproc.run(inproc.secret, long)
    assert "LONGSECRET12" not in _written_text(tmp_path / "profiles")
    assert r.successful()


@inproc.app.task(name="inproc.dsn_failure")
def dsn_failure(dsn: str) -> None:
    raise ConnectionError(f"could not connect to {dsn}")


def test_secret_in_an_exception_message_is_masked(install, tmp_path):
    install()  # even without record_args: the message of the task's exception is recorded
    r = inproc.run(dsn_failure, "postgresql://app:EXCSECRET13@db:5432/x")
    assert r.failed()
    out = tmp_path / "profiles"
    assert "EXCSECRET13" not in _written_text(out)
    assert _meta(out, r.id)["exception"]["message"] == "could not connect to postgresql://app:***@db:5432/x"


def test_extra_patterns_from_install_and_environment(install, tmp_path, monkeypatch):
    # install(redact=...) takes regular expressions: a group masks only that group
    install(record_args=True, redact=[r"acct-(\d{6})", r"INTERNAL-[A-Z]+"])
    r = inproc.run(inproc.secret, "acct-123456 and INTERNAL-XYZ, ok")
    out = tmp_path / "profiles"
    assert _meta(out, r.id)["args"]["args"] == ["'acct-*** and ***, ok'"]
    assert "123456" not in _written_text(out)
    # $CELERYLAB_REDACT (one pattern or a JSON list), through the worker settings
    monkeypatch.setenv("CELERYLAB_REDACT", '["cust_[0-9]+"]')
    conf = capture.settings({"directory": str(tmp_path / "env")})
    assert conf["redact"] == '["cust_[0-9]+"]'
    h = capture.install(inproc.app, **{**conf, "record_args": True})
    try:
        r = inproc.run(inproc.secret, "cust_98765")
        assert "98765" not in _written_text(tmp_path / "env")
    finally:
        h.uninstall()
    with pytest.raises(ValueError, match="not a regular expression"):
        _redact.patterns_from("(unclosed")


def test_non_secrets_are_kept():
    r = _redact.DEFAULT
    for text in ["https://example.com/a/b?page=2", "mailto:me@example.org", "user@host", "monkey=3",
                 "Tokyo, basic plan", "AKIA-short"]:  # fmt: skip
        assert r.sub(text) == text


# ------------------------------------------------------------------------------------ 6. one file set per attempt
def test_a_rerun_of_the_same_task_id_keeps_both_file_sets(install, tmp_path):
    install()
    a = inproc.work.apply(args=(3,), task_id=U)
    b = inproc.work.apply(args=(4,), task_id=U)  # a redelivery runs the same id again
    assert (a.get(), b.get()) == (3, 6)
    out = tmp_path / "profiles"
    names = sorted(p.name for p in out.iterdir())
    assert names == [f"inproc.work.{U}.a2.json", f"inproc.work.{U}.a2.prof", f"inproc.work.{U}.json",
                     f"inproc.work.{U}.prof"]  # fmt: skip
    metas = [json.loads((out / n).read_text()) for n in names if n.endswith(".json")]
    assert sorted(m["attempt"] for m in metas) == [1, 2] and {m["task_id"] for m in metas} == {U}
    ps = cl.load(out, cache=False)
    assert len(ps.profiles) == 2 and len(ps.errors) == 0


def test_exclusive_write_never_replaces(tmp_path):
    _writer.write_atomic(str(tmp_path), "x.json", b"1", exclusive=True)
    with pytest.raises(FileExistsError):
        _writer.write_atomic(str(tmp_path), "x.json", b"2", exclusive=True)
    assert (tmp_path / "x.json").read_bytes() == b"1" and sorted(os.listdir(tmp_path)) == ["x.json"]


# ------------------------------------------------------------------------------------------ 7. honest retention
def test_retention_does_not_count_files_another_process_deleted(tmp_path, monkeypatch):
    for i in range(10):
        for suffix in (".prof", ".json"):
            (tmp_path / f"t.{i}{suffix}").write_bytes(b"x" * 10)
            os.utime(tmp_path / f"t.{i}{suffix}", (1000 + i, 1000 + i))
    real_unlink = os.unlink
    raced: list[str] = []

    def racing_unlink(path: Any, *a: Any, **k: Any) -> None:
        # another pool process deletes the two oldest profiles between our scan and our unlink
        if os.path.basename(path) in ("t.0.prof", "t.1.prof") and path not in raced:
            raced.append(path)
            real_unlink(path)
        real_unlink(path, *a, **k)

    monkeypatch.setattr(os, "unlink", racing_unlink)
    ret = _writer.Retention(str(tmp_path), max_files=5, max_bytes=None)
    ret.enforce()
    assert len(list(tmp_path.glob("*.prof"))) == 4  # 90 % of the cap
    assert ret.deleted == 6 - 2  # six went, two of them by someone else


# ------------------------------------------------------------------------------- 5. one profile per greenlet
def _step_a() -> int:
    return 1


def _step_b() -> int:
    return 2


def test_each_greenlet_has_its_own_profile(tmp_path):
    import sys

    import greenlet

    from celerylab.capture import _profile

    main = greenlet.getcurrent()
    done: dict[str, Any] = {}

    def entry(step: Any, n: int) -> int:
        total = 0
        for _ in range(n):
            total += step()
            main.switch()  # yield to the scheduler, which runs the other greenlet
        return total

    def task(name: str, step: Any) -> None:
        prof = _profile.start()
        assert prof is not None  # the other greenlet's profiler is not hooked while this one runs
        entry(step, 100)
        _profile.stop(prof)
        done[name] = prof

    previous = greenlet.gettrace()
    try:
        ga = greenlet.greenlet(lambda: task("a", _step_a))
        gb = greenlet.greenlet(lambda: task("b", _step_b))
        while not (ga.dead and gb.dead):
            for g in (ga, gb):
                if not g.dead:
                    g.switch()
                assert sys.getprofile() is None  # the scheduler (like gevent's hub) is never profiled
    finally:
        greenlet.settrace(previous)
    for name, own, other in (("a", "_step_a", "_step_b"), ("b", "_step_b", "_step_a")):
        path = tmp_path / f"{name}.prof"
        path.write_bytes(_profile.dump(done[name]))
        stats = {k[2]: v for k, v in pstats.Stats(str(path)).stats.items()}
        assert stats[own][:2] == (100, 100) and other not in stats
        assert stats["entry"][:2] == (1, 1)  # 100 yields, one call
        assert "task" not in stats and "<lambda>" not in stats  # nothing from before the profile started
        assert 0 <= _profile.cpu_time(done[name]) < 1


def test_a_failing_switch_hook_never_reaches_the_app(monkeypatch):
    import greenlet

    from celerylab.capture import _profile

    def broken(origin: Any, target: Any) -> None:
        raise RuntimeError("bug in the switch hook")

    monkeypatch.setattr(_profile, "_switch", broken)
    previous = greenlet.gettrace()
    try:
        _profile._ensure_tracer()
        g = greenlet.greenlet(lambda: 42)
        assert g.switch() == 42
    finally:
        greenlet.settrace(previous)


# ------------------------------------------------------------------------- 1. finding the pool before patching
@pytest.mark.parametrize(
    ("args", "env", "pool"),
    [
        (["-A", "proj", "-P", "gevent"], {}, "gevent"),
        (["-A", "proj", "-Peventlet", "-c", "4"], {}, "eventlet"),
        (["-A", "proj", "--pool", "gevent"], {}, "gevent"),
        (["-A", "proj", "worker", "--pool=eventlet"], {}, "eventlet"),
        (["-A", "proj", "-P", "gevent", "-P", "threads"], {}, "threads"),  # the last one wins, as in click
        (["-A", "proj"], {"CELERY_WORKER_POOL": "gevent"}, "gevent"),
        (["-A", "proj", "-P", "solo"], {"CELERY_WORKER_POOL": "gevent"}, "solo"),  # the command line wins
        (["-A", "proj", "-c", "2"], {}, None),
    ],
)
def test_requested_pool(args, env, pool):
    from celerylab import _patch

    assert _patch.requested_pool(args, env) == pool


def test_only_the_worker_command_patches():
    from celerylab import _patch

    celery_part = ["--", "-A", "p", "-P", "gevent"]
    assert _patch.worker_args(["worker", "--dir", "d", *celery_part]) == ["--dir", "d", *celery_part]
    assert _patch.worker_args(["report", "worker"]) is None
    assert _patch.worker_args(["--help"]) is None
    assert _patch.app_from_args(["-A", "proj", "worker"], {}) == "proj"
    assert _patch.app_from_args(["--app=proj.celery"], {}) == "proj.celery"
    assert _patch.app_from_args(["-c", "2"], {"CELERY_APP": "envproj"}) == "envproj"
    assert _patch.invoked_as_celerylab("/usr/local/bin/celerylab")
    assert _patch.invoked_as_celerylab("-m")
    assert not _patch.invoked_as_celerylab("/usr/bin/pytest")


def test_publish_stem_is_bounded_too():
    from celerylab._files import publish_stem

    stem = publish_stem("n" * 250, "i" * 220)
    assert stem.endswith(".publish") and len(stem) + len(".prof") <= MAX_NAME
    assert publish_stem("billing.charge", U) == f"billing.charge.{U}.publish"
