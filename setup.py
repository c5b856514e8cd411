"""Build step: the repository's ``sample_profiles/`` ship inside the wheel as one compressed archive.

``celerylab/_data/sample_profiles.tar.xz`` is written into the build folder (never into the source tree) from the
sample folder, each ``.prof.gz`` stored uncompressed so that xz can share what the profiles have in common (the
archive is about a third of the gzip files' size).  Member order, times and owners are fixed, so the sdist (which
carries ``sample_profiles/``) and the checkout build the same archive.  ``celerylab.sample_profiles()`` extracts it
to the cache folder on first use.
"""

from __future__ import annotations

import gzip
import io
import lzma
import os
import tarfile

from setuptools import Extension, setup
from setuptools.command.build_py import build_py

SAMPLES = "sample_profiles"
ARCHIVE = os.path.join("celerylab", "_data", "sample_profiles.tar.xz")


def _members(root: str):
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith("."):
                continue
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, root).replace(os.sep, "/")
            with open(path, "rb") as f:
                data = f.read()
            if rel.endswith(".prof.gz"):
                data, rel = gzip.decompress(data), rel[: -len(".gz")]
            yield rel, data


def write_archive(root: str, out: str) -> None:
    os.makedirs(os.path.dirname(out), exist_ok=True)
    tmp = out + ".tmp"
    with lzma.open(tmp, "wb", preset=9) as xz, tarfile.open(fileobj=xz, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for rel, data in sorted(_members(root)):
            info = tarfile.TarInfo(f"sample_profiles/{rel}")
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    os.replace(tmp, out)


class BuildPyWithSamples(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False) or not os.path.isdir(SAMPLES):
            return  # an editable install reads the checkout's sample_profiles/ directly
        write_archive(SAMPLES, os.path.join(self.build_lib, ARCHIVE))


#: The loader's compiled decoder (celerylab/core/_cdecode.c, docs/loading.md): stable ABI, so one wheel per platform
#: serves every CPython >= 3.11.  ``optional``: where no C compiler is at hand, an install from the sdist still
#: succeeds and the loader uses its pure-Python decoder (same results, about three times slower).
CDECODE = Extension(
    "celerylab.core._cdecode",
    ["celerylab/core/_cdecode.c"],
    py_limited_api=True,
    optional=True,
    # stat_sigs starts a POSIX thread (in libc since glibc 2.34; -pthread links libpthread where it is apart)
    extra_compile_args=[] if os.name == "nt" else ["-pthread"],
    extra_link_args=[] if os.name == "nt" else ["-pthread"],
)

setup(
    cmdclass={"build_py": BuildPyWithSamples},
    ext_modules=[CDECODE],
    options={"bdist_wheel": {"py_limited_api": "cp311"}},
)
