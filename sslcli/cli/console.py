"""Where output goes: humans read stderr (tables, bars, errors); ``--json`` writes stdout."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.markup import escape

from sslcli.errors import SSLError

stderr = Console(stderr=True)


def print_json(payload: Any) -> None:
    sys.stdout.write(json.dumps(payload, indent=2) + "\n")


def print_error(error: SSLError) -> None:
    """The error and its hint; their text is printed as written (a file name with
    ``[...]`` in it is not read as a style tag)."""
    stderr.print(f"[bold red]error:[/] {escape(error.message)}", highlight=False, soft_wrap=True)
    if error.hint:
        stderr.print(f"[dim]hint:[/] {escape(error.hint)}", highlight=False, soft_wrap=True)
