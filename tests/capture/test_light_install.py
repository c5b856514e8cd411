"""The light distribution (``celerylab-capture``) in a fresh virtual environment: no analysis stack there, capture
works in a real worker over Redis, and the full package here reads what it wrote exactly."""

from __future__ import annotations

import json
import os
import pstats
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

import celerylab as cl

from .conftest import BROKER, REPO, require_services, wait_for

pytestmark = [pytest.mark.services, pytest.mark.slow]

HEAVY = ("pandas", "numpy", "pyarrow", "scipy", "plotly", "ipywidgets", "anywidget", "kaleido", "tqdm")

APP = """
import os
from celery import Celery

app = Celery("lightapp", broker=os.environ["LIGHT_BROKER"], backend=os.environ["LIGHT_BROKER"])
app.conf.update(broker_connection_retry_on_startup=True, task_default_queue=os.environ["LIGHT_QUEUE"],
                worker_hijack_root_logger=False)


def parse(line):
    return [int(x) for x in line.split(",")]


def total(rows):
    return sum(sum(r) for r in rows)


@app.task(name="light.work")
def work(n):
    return total(parse(",".join(str(i) for i in range(k + 1))) for k in range(n))
"""

SIZE_OF = """
import json, sys
from importlib import metadata
from pathlib import Path

def closure(name, seen):
    key = name.lower().replace("_", "-")
    if key in seen:
        return seen
    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return seen
    seen.add(key)
    for req in dist.requires or []:
        if "extra ==" in req:
            continue
        dep = req.split(";")[0].strip().split(" ")[0]
        for sep in "<>=!~[(":
            dep = dep.split(sep)[0]
        closure(dep.strip(), seen)
    return seen

def size(name):
    dist = metadata.distribution(name)
    paths = [Path(dist.locate_file(f)) for f in dist.files or []]
    return sum(p.stat().st_size for p in paths if p.is_file())

# Celery as a worker image has it: with its broker client (the redis extra)
celery = closure("redis", closure("celery", set()))
everything = closure("celerylab-capture", set())
beyond = sorted(everything - celery)
print(json.dumps({"beyond_celery": {d: size(d) for d in beyond}, "celery_closure": sum(size(d) for d in celery)}))
"""


@pytest.fixture(scope="module")
def light_env(tmp_path_factory):
    """A fresh virtual environment with only the light wheel (and what it requires) installed."""
    tmp = tmp_path_factory.mktemp("light")
    script = REPO / "scripts" / "build_capture_dist.py"
    build = subprocess.run([sys.executable, str(script), "--out", str(tmp / "dist")], capture_output=True, text=True,
                           timeout=300)  # fmt: skip
    assert build.returncode == 0, build.stderr
    wheel = Path(build.stdout.strip().splitlines()[-1])
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    # what a worker image has: Celery with its broker client, and the light wheel
    pip = subprocess.run([str(py), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(wheel),
                          "celery[redis]"], capture_output=True, text=True, timeout=600)  # fmt: skip
    assert pip.returncode == 0, pip.stdout + pip.stderr
    return tmp, venv, py


def _run(py: Path, code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",) and not k.startswith("CELERYLAB_")}
    return subprocess.run([str(py), "-c", code], capture_output=True, text=True, timeout=120, cwd=cwd, env=env)


def test_the_light_environment_has_no_analysis_stack_and_says_so(light_env):
    tmp, venv, py = light_env
    # THEN none of the heavy packages can be imported there, and celerylab is the installed light copy
    found = f"[m for m in {HEAVY!r} if importlib.util.find_spec(m)]"
    code = (
        f"import importlib.util, json, celerylab, celerylab.capture; print(json.dumps([{found}, celerylab.__file__]))"
    )
    r = _run(py, code, tmp)
    assert r.returncode == 0, r.stderr
    present, where = json.loads(r.stdout)
    assert present == [] and where.startswith(str(venv))
    # AND an analysis call says what is missing and what to install, instead of a bare ImportError
    r = _run(py, "import celerylab as cl; cl.load('x')", tmp)
    assert r.returncode != 0 and "AnalysisNotInstalled" in r.stderr and "pip install celerylab" in r.stderr
    # AND the command line offers the capture commands, and names the fix for the others
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    cmd = str(venv / "bin" / "celerylab")
    help_ = subprocess.run([cmd, "--help"], capture_output=True, text=True, timeout=60, cwd=tmp, env=env)
    assert help_.returncode == 0 and "worker" in help_.stdout and "run" in help_.stdout
    assert "top" not in help_.stdout.split("Commands:")[1]
    top = subprocess.run([cmd, "top", "x"], capture_output=True, text=True, timeout=60, cwd=tmp, env=env)
    assert top.returncode == 1 and "celerylab top needs celerylab's analysis side" in top.stderr
    assert "Traceback" not in top.stderr


def test_installed_size_beyond_celery(light_env):
    tmp, _, py = light_env
    r = _run(py, SIZE_OF, tmp)
    assert r.returncode == 0, r.stderr
    sizes = json.loads(r.stdout)
    beyond = sizes["beyond_celery"]
    total = sum(beyond.values())
    print(f"\nlight install beyond Celery: {total / 2**20:.2f} MiB "
          f"({', '.join(f'{k} {v / 2**20:.2f} MiB' for k, v in sorted(beyond.items()))}); "
          f"Celery and its requirements: {sizes['celery_closure'] / 2**20:.1f} MiB")  # fmt: skip
    assert set(beyond) <= {"celerylab-capture", "greenlet"}, beyond
    assert total <= 15 * 2**20


def test_a_worker_captures_with_the_light_install_and_the_full_package_reads_it_exactly(light_env):
    require_services(6379)
    tmp, venv, _ = light_env
    app_dir = tmp / "app"
    app_dir.mkdir(exist_ok=True)
    (app_dir / "lightapp.py").write_text(APP)
    out = tmp / "profiles"
    queue = f"light-{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("CELERYLAB_")}
    env.update(LIGHT_BROKER=BROKER, LIGHT_QUEUE=queue, PYTHONPATH=str(app_dir))
    # GIVEN an app that knows nothing of celerylab, run by the light install's `celerylab worker`
    argv = [str(venv / "bin" / "celerylab"), "worker", "--dir", str(out), "--run", "light", "--", "-A", "lightapp",
            "worker", "-P", "prefork", "-c", "1", "-Q", queue, "-l", "INFO", "--without-mingle",
            "--without-gossip"]  # fmt: skip
    with open(tmp / "worker.log", "wb") as log:
        proc = subprocess.Popen(argv, cwd=app_dir, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip
    from celery import Celery

    client = Celery("light-client", broker=BROKER, backend=BROKER, set_as_current=False)
    try:
        # WHEN it runs tasks
        results = [client.send_task("light.work", args=(n,), queue=queue) for n in (20, 40, 60)]
        for r in results:
            assert r.get(timeout=90) > 0
        ids = {r.id for r in results}
        del results, r  # let the results go while the client is open (their finaliser unsubscribes)

        def written() -> list[Path]:
            return [p for p in out.glob("light.work.*.prof") if p.with_suffix(".json").exists()] if out.exists() else []

        def check() -> None:
            assert proc.poll() is None, (tmp / "worker.log").read_text(errors="replace")[-3000:]

        files = wait_for(lambda: len(written()) == 3 and written(), 60, "the light worker's profiles", check=check)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        client.close()
    # THEN the full package (this environment) loads them exactly, with their sidecars
    ps = cl.load(out, cache=False)
    assert set(ps.profiles["task_id"]) == ids and (ps.profiles["run"].astype(str) == "light").all()
    assert ps.to_pstats_dict() == pstats.Stats(*sorted(map(str, files))).stats  # pstats adds them in this order
    assert {"parse", "total"} <= set(ps.functions.loc[ps.function_totals["func_id"], "name"])
