"""The ``vdg`` command line.

Only this module (and the command modules it loads) configures logging and prints; libraries log
with ``logging.getLogger(__name__)``. Every command has ``--help``; exit status 0 on success, 1
on a vdg error (the message names the field and value), 2 on a usage error.
"""

from __future__ import annotations

import logging
from importlib.metadata import PackageNotFoundError, version

import click

from grid.errors import VdgError


def _version() -> str:
    try:
        return version("vdg")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"


class VdgGroup(click.Group):
    """A click group that turns vdg errors into a one-line message and exit status 1."""

    def invoke(self, ctx: click.Context) -> object:
        """Run the command; a vdg error becomes ``error: <message>`` and exit status 1."""
        try:
            return super().invoke(ctx)
        except VdgError as exc:
            logging.getLogger("vdg").debug("command failed", exc_info=True)
            click.echo(f"error: {exc}", err=True)
            ctx.exit(1)


@click.group(cls=VdgGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(_version(), "--version", prog_name="vdg")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors; no progress bars.")
@click.pass_context
def cli(ctx: click.Context, verbose: int, quiet: bool) -> None:
    """vdg: blockchain-backed local energy markets and DER coordination."""
    level = logging.WARNING if quiet else (logging.DEBUG if verbose >= 2 else logging.INFO
                                           if verbose == 1 else logging.WARNING)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ctx.ensure_object(dict)
    ctx.obj["quiet"] = quiet


@cli.group()
def experiment() -> None:
    """Run the experiments that reproduce the papers' studies."""


def _register() -> None:
    from experiments.commands.grid import feeders, opf  # noqa: PLC0415 - keeps import of cli cheap

    cli.add_command(feeders)
    cli.add_command(opf)

    from experiments.commands.market import market, mda  # noqa: PLC0415

    cli.add_command(market)
    experiment.add_command(mda)

    from experiments.commands.sweep import sweep  # noqa: PLC0415

    cli.add_command(sweep)

    from experiments.commands.viz import viz  # noqa: PLC0415

    cli.add_command(viz)

    from experiments.commands.admm import bder, yangwang  # noqa: PLC0415

    experiment.add_command(bder)
    experiment.add_command(yangwang)

    from experiments.commands.run import agents, run  # noqa: PLC0415

    cli.add_command(run)
    cli.add_command(agents)


_register()


def main() -> None:
    """Entry point of the ``vdg`` script."""
    cli(prog_name="vdg")


if __name__ == "__main__":
    main()
