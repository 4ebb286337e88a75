"""``checker rules``: the rules and eras in specs/."""

from __future__ import annotations

from pathlib import Path

import click

from checker.cli import EXIT_CODES
from checker.cli.common import specs_option


@click.command(epilog=EXIT_CODES)
@specs_option
def rules(specs: Path) -> int:
    """List the rules in specs/rules and the eras in specs/eras, after the
    specs directory they were read from."""
    from checker.rules.specs import load_eras, load_rules, specs_origin
    from checker.text import one_line, printable

    # both are read before anything is printed: an error leaves stdout empty
    known, eras = load_rules(specs), load_eras(specs)
    # the specs' texts and their folder's name are shown, never obeyed: a rule's
    # expression on one line (see one_line), any control character escaped
    click.echo(printable(f"specs: {specs_origin(specs)}"))
    click.echo("rules:")
    for rule in known.values():
        where = printable(
            "; ".join(
                f"{key} {rule.origin[key]}" if key == "era" else rule.origin[key]
                for key in ("kernels", "era")
                if key in rule.origin
            )
        )
        shown = one_line(rule.expression)
        click.echo(f"  {rule.name:12} {shown}" + (f"   [{where}]" if where else ""))
    click.echo("eras (--era):")
    for era in eras.values():
        mmus = ", ".join(m.value for m in era.mmus)
        kernels = f"   [{printable(era.kernels)}; {mmus}]"
        click.echo(f"  {era.name:12} {printable(' '.join(era.summary.split()))}{kernels}")
    return 0
