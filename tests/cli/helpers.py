"""What a command's --help says about one option, as the user reads it."""

import re

import typer

from sslcli.cli.app import app


def option_help(command: str, option: str) -> str:
    """The help text of ``option`` of ``command``, with the escapes rich removes removed."""
    (param,) = [p for p in typer.main.get_command(app).commands[command].params if option in p.opts]
    return (param.help or "").replace("\\[", "[")


def stated_default(command: str, option: str) -> str:
    """What the option's help says its default is: ``[default: X]`` gives X's first word."""
    found = re.search(r"\[default: (\w+)", option_help(command, option))
    assert found, option_help(command, option)
    return found.group(1)
