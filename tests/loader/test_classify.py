"""Module and kind of each function: a file under lib/pythonX.Y is stdlib when under the prefixes the sidecars name."""

from __future__ import annotations

import json
import marshal

import pytest

import celerylab as cl


def _profile(folder, name: str, prefixes: list[str] | None) -> None:
    run = ("/srv/app/t.py", 3, "run")
    stats = {
        ("/opt/py/lib/python3.11/json/decoder.py", 10, "decode"): (1, 1, 0.5, 0.75, {run: (1, 1, 0.5, 0.75)}),
        run: (1, 1, 0.25, 1.0, {}),
    }
    (folder / name).write_bytes(marshal.dumps(stats))
    if prefixes is not None:
        meta = {"schema": "celerylab.task/1", "task_name": "t.run", "task_id": name, "sys_prefixes": prefixes}
        (folder / (name[: -len(".prof")] + ".json")).write_text(json.dumps(meta))


@pytest.mark.parametrize("jobs", [1, 2])
def test_loaded_kinds_follow_the_sidecars_prefixes_through_the_merge_and_the_cache(tmp_path, jobs):
    """A file under lib/python3.11 of another machine is stdlib when a sidecar names that prefix, app otherwise;
    a cache merge that renumbers the functions judges them anew, as an uncached load does."""
    folder = tmp_path / "p"
    folder.mkdir()
    for i in range(40):
        _profile(folder, f"t.run.{i:04d}.prof", None)
    kind = lambda ps: ps.functions.set_index("name")["kind"].astype(str).to_dict()  # noqa: E731
    assert kind(cl.load(folder, jobs=jobs, cache=False)) == {"decode": "app", "run": "app"}
    cache = tmp_path / "cache"
    assert kind(cl.load(folder, jobs=jobs, cache=cache)) == {"decode": "app", "run": "app"}
    _profile(folder, "t.run.0005a.prof", ["/opt/py"])  # sorts among the cached files: ids renumbered
    got = cl.load(folder, jobs=jobs, cache=cache)
    assert kind(got) == {"decode": "stdlib", "run": "app"}
    assert got.functions.set_index("name").loc["decode", "module"] == "json.decoder"
    fresh = cl.load(folder, jobs=jobs, cache=False)
    assert got.functions.astype(str).equals(fresh.functions.astype(str))
