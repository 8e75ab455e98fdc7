"""What every btseg command shares: one-line errors, exit codes, the console."""

from __future__ import annotations

import atexit
import contextlib
import functools
import importlib.util
import math
import signal
import sys
import warnings
from typing import Any, Callable, Iterable, Iterator

import click
from rich.console import Console

from btseg.errors import BackendUnavailableError, BtsegError, ConfigError

console = Console(stderr=True)
# every btseg command and subcommand answers -h as well as --help (subcommands inherit it)
HELP = {"help_option_names": ["-h", "--help"]}


def handle_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn any :class:`BtsegError` into ``error: <message>`` on stderr and exit code 2; show
    the data loaders' skipped-items warning (``--skip-bad``) as ``warning: <message>``."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with _skipped_as_warning_lines():
                return fn(*args, **kwargs)
        except BtsegError as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(e.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)

    return wrapper


@contextlib.contextmanager
def _skipped_as_warning_lines() -> Iterator[None]:
    """SkippedFilesWarning -> ``warning: <summary>`` + one line per skipped item, each named
    once (Python's default format would add the source line of the call).  Matched by name:
    btseg-predict must not import the data loaders."""
    shown = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001, ANN202
        if category.__name__ == "SkippedFilesWarning":
            click.echo(f"warning: {message}", err=True)
        else:
            shown(message, category, filename, lineno, file, line)

    warnings.showwarning = show
    try:
        yield
    finally:
        if warnings.showwarning is show:
            warnings.showwarning = shown


# what the commands beyond the runtime need, and the extra that installs it
EXTRAS: dict[str, tuple[str, ...]] = {"train": ("torch", "safetensors", "onnx", "onnxslim"),
                                      "dicom": ("highdicom", "pynetdicom")}


def quiet_teardown() -> None:
    """Ignore SIGTERM and SIGINT once the interpreter is exiting: the command's outcome (exit
    code, files) is decided by then.  CPython's finalization resets every Python signal
    handler to the default action, and OpenVINO's and torch's native teardown then runs for a
    second or more; a SIGTERM in that window killed a finished ``btseg-export`` with -15 (seen
    in CI, its package already whole).  The ``atexit`` hook runs before that reset (registered
    last, it runs first).  SIGKILL still ends a teardown that hangs."""
    atexit.unregister(_ignore_stop_signals)  # one hook however often a command runs in one process
    atexit.register(_ignore_stop_signals)


def _ignore_stop_signals() -> None:
    with contextlib.suppress(ValueError):  # only the main thread may set handlers
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_IGN)


def require_extra(command: str, extra: str) -> None:
    """Refuse with one line (exit 2) when ``command`` needs an extra this install lacks.

    The base install (``pip install btseg``) runs the runtime and ``btseg-predict`` with no
    PyTorch; ``btseg-distill``, ``btseg-export`` and ``btseg-bench`` need ``btseg[train]``.
    """
    missing = []
    for package in EXTRAS[extra]:
        try:
            found = importlib.util.find_spec(package) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(package)
    if missing:
        raise BackendUnavailableError(f"{command} needs {', '.join(missing)}, which this install lacks: "
                                      f"pip install 'btseg[{extra}]'")


def requires_extra(command: str, extra: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator form of :func:`require_extra`; put it under :func:`handle_errors`."""

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            require_extra(command, extra)
            return fn(*args, **kwargs)

        return wrapper

    return deco


def finite(name: str, value: float | None, low: float, high: float = math.inf, *,
           low_open: bool = False) -> float | None:
    """A float option's value, or ConfigError (one ``error:`` line, exit 2) when it is nan,
    inf or outside [low, high] ((low, high] with ``low_open``).  None passes through."""
    if value is None:
        return None
    ok = math.isfinite(value) and (value > low if low_open else value >= low) and value <= high
    if not ok:
        lo = f"> {low:g}" if low_open else f">= {low:g}"
        hi = "" if high == math.inf else f" and <= {high:g}"
        raise ConfigError(f"{name} {value!r}: expected a finite number {lo}{hi}")
    return value


def refuse_given(names: Iterable[str], why: str) -> None:
    """Refuse (ConfigError, exit 2, before any work) when the user gave any of the options
    ``names`` (parameter names) on the command line of the current click command: an option
    that cannot be honoured is never silently dropped.  Defaults do not count."""
    from click.core import ParameterSource

    ctx = click.get_current_context()
    given = [p.opts[0] for p in ctx.command.params if p.name in names
             and ctx.get_parameter_source(p.name) not in (None, ParameterSource.DEFAULT)]
    if given:
        raise ConfigError(f"{', '.join(given)}: not used here: {why}")
