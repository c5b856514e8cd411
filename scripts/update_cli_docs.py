"""Rewrite every ``$ celerylab ... --help`` block of docs/cli.md with the real help text (80 columns).

    .venv/bin/python scripts/update_cli_docs.py          # rewrite docs/cli.md
    .venv/bin/python scripts/update_cli_docs.py --check  # exit 1 and show the first stale block

tests/report/test_cli.py runs the check, so the documented help cannot drift from the code.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "cli.md"
BLOCK = re.compile(r"^\$ celerylab(?P<args>(?: [\w-]+)?) --help\n(?P<body>.*?)(?=^```)", re.M | re.S)


def real_help(args: str) -> str:
    cmd = [sys.executable, "-m", "celerylab.cli", *args.split(), "--help"]
    env = {**os.environ, "COLUMNS": "80"}
    return subprocess.run(cmd, capture_output=True, text=True, check=True, env=env, timeout=120).stdout


def stale_blocks(text: str) -> list[tuple[str, str, str]]:
    """(command, documented, real) for every help block that differs."""
    out = []
    for m in BLOCK.finditer(text):
        real = real_help(m["args"])
        if m["body"] != real:
            out.append((f"celerylab{m['args']} --help", m["body"], real))
    return out


def rewrite(text: str) -> str:
    return BLOCK.sub(lambda m: f"$ celerylab{m['args']} --help\n{real_help(m['args'])}", text)


def main() -> int:
    text = DOC.read_text(encoding="utf-8")
    if "--check" in sys.argv[1:]:
        stale = stale_blocks(text)
        for cmd, _, _ in stale:
            print(f"{DOC}: the block of `{cmd}` is stale: run scripts/update_cli_docs.py", file=sys.stderr)
        return 1 if stale else 0
    DOC.write_text(rewrite(text), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
