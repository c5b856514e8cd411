"""The ``celerylab`` command line.

Commands live in their own modules and are imported only when run (``celerylab --help`` stays fast and the
capture side never imports pandas).  Register a command by adding ``name: "module:attribute"`` to ``COMMANDS``.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

#: command name -> "module:click_command"
COMMANDS: dict[str, str] = {
    "demo": "celerylab._cli_demo:demo",
    "summary": "celerylab._cli_demo:summary",
    "worker": "celerylab.capture.cli:worker",
    "generate-samples": "celerylab.demo.generate:generate_samples",
    "report": "celerylab._cli_report:report",
    "diff": "celerylab._cli_report:diff",
    "top": "celerylab._cli_report:top",
    "callgraph": "celerylab._cli_report:callgraph",
    "export-pstats": "celerylab._cli_report:export_pstats",
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
            if quiet and e.name and (e.name == mod_name or mod_name.startswith(e.name + ".")):
                return None  # a command whose module is not built yet
            raise
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
    except Exception as e:
        from .errors import CelerylabError

        if isinstance(e, CelerylabError | FileNotFoundError | ValueError | LookupError):
            # a KeyError's str() is the repr of its message: show the message itself
            msg = e.args[0] if isinstance(e, KeyError) and len(e.args) == 1 else e
            click.echo(f"celerylab: error: {msg}", err=True)
            return 1
        raise
    return rv if isinstance(rv, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
