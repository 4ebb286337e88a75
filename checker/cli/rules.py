"""``checker rules``: the rules and profiles in specs/."""

from __future__ import annotations

from pathlib import Path

import click

from checker.cli.common import specs_option


@click.command()
@specs_option
def rules(specs: Path) -> int:
    """List the rules in specs/rules and the profiles in specs/profiles, after the
    specs directory they were read from."""
    from checker.specs import load_profiles, load_rules, specs_origin

    # both are read before anything is printed: an error leaves stdout empty
    known, profiles = load_rules(specs), load_profiles(specs)
    click.echo(f"specs: {specs_origin(specs)}")
    click.echo("rules:")
    for rule in known.values():
        where = rule.origin.get("kernels", "")
        click.echo(f"  {rule.name:12} {rule.expression}" + (f"   [{where}]" if where else ""))
    click.echo("profiles (--profile):")
    for profile in profiles.values():
        kernels = f"   [{profile.kernels}]" if profile.kernels else ""
        click.echo(f"  {profile.name:12} {profile.summary}{kernels}")
    return 0
