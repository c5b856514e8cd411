"""The package works when installed from a wheel: sample profiles inside it, found from any directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAX_WHEEL_BYTES = 10 * 1024 * 1024


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: int = 900) -> str:
    out = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"{args}\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out.stdout


CDECODE = "celerylab/core/_cdecode.abi3.so"


def _record(wheel: Path) -> list[str]:
    """The wheel's RECORD (path, hash, size) lines: equal RECORDs mean equal contents.  The compiled decoder is
    named but not hashed: the compiler writes the build folder's path into it."""
    with zipfile.ZipFile(wheel) as z:
        name = next(n for n in z.namelist() if n.endswith(".dist-info/RECORD"))
        lines = (line for line in z.read(name).decode().splitlines() if not line.startswith(name))
        return sorted(line.split(",")[0] if line.startswith(CDECODE) else line for line in lines)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_wheel_from_sdist_installs_and_runs_the_demo_outside_the_repo(tmp_path):
    dist = tmp_path / "dist"
    # the default build: an sdist, then the wheel built from that sdist
    _run([sys.executable, "-m", "build", "--outdir", str(dist), str(ROOT)], cwd=tmp_path)
    (wheel,) = dist.glob("*.whl")
    (sdist,) = dist.glob("*.tar.gz")
    assert wheel.stat().st_size <= MAX_WHEEL_BYTES, wheel.stat().st_size
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
    assert "celerylab/_data/sample_profiles.tar.xz" in names
    assert "celerylab/report/static/report.css" in names
    assert CDECODE in names  # the compiled decoder, stable ABI: one wheel for every CPython >= 3.11
    assert "-cp311-abi3-" in wheel.name, wheel.name
    assert not any(n.startswith("sample_profiles/") for n in names)
    # a wheel built straight from the checkout has the very same contents
    direct = tmp_path / "direct"
    _run([sys.executable, "-m", "build", "--wheel", "--outdir", str(direct), str(ROOT)], cwd=tmp_path)
    assert _record(next(direct.glob("*.whl"))) == _record(wheel)

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CELERYLAB_SAMPLES", "VIRTUAL_ENV")}
    _run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)], cwd=tmp_path, env=env)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env["CELERYLAB_CACHE_DIR"] = str(tmp_path / "cache")
    out = _run([str(venv / "bin" / "celerylab"), "demo", "-n", "3", "-o", "report.html"], cwd=elsewhere, env=env)
    # every profile of the samples: each run's task executions and its producer's profiled publishes
    runs = json.loads((ROOT / "sample_profiles" / "manifest.json").read_text(encoding="utf-8"))["runs"]
    n = sum(r["profiles"] + r.get("publishes", 0) for r in runs.values())
    assert f"{n} profiles" in out, out[:2000]
    assert (elsewhere / "report.html").stat().st_size > 10_000
    check = (
        "import celerylab as cl, pathlib, sys\n"
        "root = cl.sample_profiles()\n"
        f"assert pathlib.Path(cl.__file__).is_relative_to({str(venv)!r}), cl.__file__\n"
        f"assert root.is_relative_to({str(tmp_path / 'cache')!r}), root\n"
        "ps = cl.load(root)\n"
        f"assert len(ps) == {n} and not len(ps.errors), (len(ps), ps.errors)\n"
        "assert sorted(ps.profiles['run'].astype(str).unique()) == ['baseline', 'candidate']\n"
        "from celerylab.core import decode\n"
        "assert decode._cdecode is not None and decode._cdecode.__file__.startswith(sys.prefix)\n"
        "from celerylab.demo.manifest import read_manifest\n"
        "assert read_manifest() is not None  # manifest.json of the extracted samples\n"
        "print('ok', len(ps), root)\n"
    )
    out = _run([str(venv / "bin" / "python"), "-c", check], cwd=elsewhere, env=env)
    assert out.startswith(f"ok {n}")
    assert sdist.stat().st_size > 0


def _tiny_archive(tmp_path: Path) -> Path:
    import io
    import lzma
    import marshal
    import tarfile

    out = tmp_path / "samples.tar.xz"
    data = marshal.dumps({("a.py", 1, "f"): (1, 1, 0.5, 0.5, {})})
    with lzma.open(out, "wb") as xz, tarfile.open(fileobj=xz, mode="w") as tar:
        for name in ("baseline/t.00000000-0000-0000-0000-000000000001.prof", "manifest.json"):
            info = tarfile.TarInfo(f"sample_profiles/{name}")
            body = data if name.endswith(".prof") else b"{}"
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    return out


def test_the_packaged_archive_is_extracted_once_into_the_cache(tmp_path, monkeypatch):
    from celerylab.core import samples

    monkeypatch.setenv("CELERYLAB_CACHE_DIR", str(tmp_path / "cache"))
    archive = _tiny_archive(tmp_path)
    folder = samples._extracted(archive)
    assert folder.is_relative_to(tmp_path / "cache") and folder.name == "sample_profiles"
    prof = folder / "baseline" / "t.00000000-0000-0000-0000-000000000001.prof"
    assert prof.is_file() and (folder / "manifest.json").read_text() == "{}"
    mtime = prof.stat().st_mtime_ns
    assert samples._extracted(archive) == folder and prof.stat().st_mtime_ns == mtime  # not extracted again
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [folder.parent.name]  # no temporary left behind
    import celerylab as cl

    ps = cl.load(folder, cache=False)
    assert len(ps) == 1 and ps.profiles["task_name"].tolist() == ["t"]


def test_sample_profiles_prefers_the_environment_then_the_checkout(tmp_path, monkeypatch):
    import celerylab as cl

    monkeypatch.delenv("CELERYLAB_SAMPLES", raising=False)
    assert cl.sample_profiles() == ROOT / "sample_profiles"  # a source checkout
    monkeypatch.setenv("CELERYLAB_SAMPLES", str(tmp_path))
    assert cl.sample_profiles() == tmp_path
