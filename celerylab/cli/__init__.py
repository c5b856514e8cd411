"""The ``celerylab`` command line: one module per command, each thin over the Python API.

Command modules import only click at the top; what a command needs is imported when it runs (``celerylab --help``
stays fast, and ``celerylab worker`` never imports pandas).  Register a command by adding
``name: "module:attribute"`` to :data:`COMMANDS`.  :func:`main` is the one place that turns errors into exit codes:
celerylab's own errors (:class:`~celerylab.errors.CelerylabError`) print ``celerylab: error: …`` and exit 1, click's
usage errors exit 2, and anything else is a bug that surfaces with its traceback.
"""

from __future__ import annotations

from .._patch import early_patch

early_patch()  # `celerylab worker -P gevent`: monkey-patch before anything else is imported, as celery does

import importlib  # noqa: E402
import sys  # noqa: E402
from typing import Any  # noqa: E402

import click  # noqa: E402

from ..errors import AnalysisNotInstalled, CelerylabError, missing_part  # noqa: E402
from ._common import EXIT_ERROR  # noqa: E402

#: command name -> "module:click_command"
COMMANDS: dict[str, str] = {
    "demo": "celerylab.cli.demo:demo",
    "summary": "celerylab.cli.demo:summary",
    "worker": "celerylab.cli.worker:worker",
    "run": "celerylab.cli.run:run",
    "generate-samples": "celerylab.cli.generate:generate_samples",
    "report": "celerylab.cli.report:report",
    "diff": "celerylab.cli.diff:diff",
    "top": "celerylab.cli.top:top",
    "callgraph": "celerylab.cli.callgraph:callgraph",
    "export-pstats": "celerylab.cli.export:export_pstats",
    "ingest": "celerylab.cli.scale:ingest",
    "ship": "celerylab.cli.scale:ship",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(n for n in COMMANDS if self._load(n, quiet=True) is not None)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        return self._load(name)

    @staticmethod
    def _load(name: str, quiet: bool = False) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        mod_name, attr = target.split(":")
        try:
            mod = importlib.import_module(mod_name)
        except ModuleNotFoundError as e:
            if not missing_part(e):
                raise
            if quiet:
                return None  # a command of the analysis side, in the light celerylab-capture installation
            raise AnalysisNotInstalled(f"celerylab {name}", str(e.name)) from None
        cmd: Any = getattr(mod, attr, None)
        return cmd if isinstance(cmd, click.Command) else None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="celerylab")
def cli() -> None:
    """celerylab: find out why a Celery task got slower or fatter.

    Capture cProfile + task metadata in real Celery workers, then load thousands of profiles exactly
    (pstats-equal), compare runs with statistics, and find DB and memory hotspots.
    """


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    from .. import _patch

    _patch.maybe_patch(sys.argv[1:] if argv is None else argv)  # a no-op when early_patch() patched already
    try:
        # without standalone mode, click *returns* the code of ctx.exit(N) instead of raising it
        rv = cli.main(args=argv, prog_name="celerylab", standalone_mode=False)
    except click.exceptions.Exit as e:
        return int(e.exit_code or 0)
    except click.ClickException as e:
        e.show()
        return e.exit_code
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return 130
    except BrokenPipeError:
        return 0
    except CelerylabError as e:
        click.echo(f"celerylab: error: {e}", err=True)
        return EXIT_ERROR
    return rv if isinstance(rv, int) else 0
