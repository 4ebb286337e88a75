"""``checker extract``: the flush rule a kernel tree contains, with where it is written."""

from __future__ import annotations

import json
from pathlib import Path

import click

from checker.cli import SIGNAL_EXIT_CODES
from checker.cli.common import PathType
from checker.schemas import schema_id

EXTRACT_EXIT_CODES = (
    """\b
Exit codes:
  0  the rule was found and printed
  2  usage error, or no flush rule found where PATH points; also stdout that
     cannot be written (a full disk, closed)
  4  internal error
"""
    + SIGNAL_EXIT_CODES
)


@click.command(epilog=EXTRACT_EXIT_CODES)
@click.argument("path", type=PathType(path_type=Path))
@click.option(
    "--json", "as_json", is_flag=True, help=f"Print JSON on stdout (schema {schema_id('extract')})."
)
def extract(path: Path, as_json: bool) -> int:
    """Print the flush rule of a kernel tree, or of its spte.h or mmu.c.

    v6.13+: the body of leaf_spte_change_needs_tlb_flush() in
    arch/x86/kvm/mmu/spte.h. Older kernels: the flush clauses of mmu_spte_update()
    in arch/x86/kvm/mmu/mmu.c (arch/x86/kvm/mmu.c before v5.9), OR-ed together.
    Check it with 'checker check --kernel PATH'.
    """
    from checker.rules import formula
    from checker.rules.kernel import extract as read_rule

    found = read_rule(path)
    if as_json:
        document = {
            "schema": schema_id("extract"),
            "file": str(found.file),
            "function": found.function,
            "line": found.line,
            "clauses": [{"line": c.line, "text": c.text} for c in found.clauses],
            "expression": found.expression,
            "expression_from_clauses": found.from_clauses,
            "formula": formula.render(found.formula),
        }
        click.echo(json.dumps(document, indent=2))
        return 0
    click.echo(f"{found.file}:{found.line}: {found.function}()")
    for clause in found.clauses:
        click.echo(f"  {found.file}:{clause.line}: {clause.text}")
    if not found.from_clauses:
        click.echo("  (the clauses alone are not the rule; written from the function's result)")
    click.echo(f"rule: {found.expression}")
    return 0
