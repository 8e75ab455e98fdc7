"""``btseg-check``: verify a whole model package (schemas, every sha256, binding to the weights).

What a cart runs at start-up and CI runs on the bundled model::

    btseg-check                       # the bundled default package
    btseg-check runs/demo/student
    btseg-check --json PACKAGE        # the report as JSON on stdout
    btseg-check --migrate PACKAGE     # format 1 -> 2: trusts the weights as they are now

Exit codes: 0 every file matches its record and every artifact is bound to the weights;
2 anything refused (one ``error:`` line per problem after the table).
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

import click
from rich.console import Console

from btseg.cli.common import HELP, handle_errors


@click.command(context_settings=HELP)
@click.argument("package_dir", required=False, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON instead of a table.")
@click.option("--migrate", is_flag=True,
              help="Upgrade a format-1 package (no weights sha256) in place, trusting its weights as they are.")
@handle_errors
def main(package_dir: Path | None, as_json: bool, migrate: bool) -> None:
    """Check every schema, file hash and weights binding of PACKAGE_DIR (default: the bundled model)."""
    from btseg import defaults
    from btseg.cli.tables import check_report as table
    from btseg.package_check import check_package, migrate as do_migrate

    if package_dir is None:
        package_dir = defaults.default_package()
    if migrate:
        for line in do_migrate(package_dir):
            click.echo(f"migrated: {line}", err=True)
    report = check_package(package_dir)
    if as_json:
        click.echo(json.dumps({"package": report.package, "ok": report.ok, "warnings": report.warnings,
                               "rows": [asdict(r) for r in report.rows]}, indent=2))
    else:
        Console(width=None if sys.stdout.isatty() else 200).print(table(report))
    for w in report.warnings:
        click.echo(f"warning: {w}", err=True)
    for e in report.errors:
        click.echo(f"error: {e}", err=True)
    sys.exit(0 if report.ok else 2)


if __name__ == "__main__":
    main()
