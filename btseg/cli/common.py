"""What every btseg command shares: one-line errors, exit codes, the console."""

from __future__ import annotations

import functools
import sys
from typing import Any, Callable

import click
from rich.console import Console

from btseg.errors import BtsegError

console = Console(stderr=True)


def handle_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn any :class:`BtsegError` into ``error: <message>`` on stderr and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except BtsegError as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(e.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)

    return wrapper
