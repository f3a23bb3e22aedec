"""The ``vdg`` command line: help everywhere, version, verbosity and exit statuses."""

import click
import pytest
from click.testing import CliRunner

from experiments.cli import cli


def _commands(group: click.Group, prefix: tuple[str, ...] = ()):
    for name, cmd in group.commands.items():
        yield (*prefix, name)
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, (*prefix, name))


ALL = list(_commands(cli))


def test_the_tree_has_the_foundation_commands():
    assert ("opf",) in ALL
    assert ("feeders",) in ALL


@pytest.mark.parametrize("path", [(), *ALL], ids=lambda p: " ".join(p) or "vdg")
def test_every_command_has_help(path):
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def test_version():
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert result.output.startswith("vdg, version ")


def test_unknown_command_is_a_usage_error():
    assert CliRunner().invoke(cli, ["frobnicate"]).exit_code == 2
