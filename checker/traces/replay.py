"""A trace read from a file, replayed through the step function.

A file is trusted for nothing: its actions are replayed from its first state under
the rule and paths it records (``certify.replay``), and a file that does not
reproduce a violation of its property is an ``InputError`` naming the file.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from checker.engines.semantics import Action, State
from checker.engines.trace import Trace
from checker.errors import InputError
from checker.model import Paths, Property, Shape


def replay_file(
    path: Path,
    rule_name: str,
    expression: str,
    prop: Property,
    paths: Paths,
    actions: Sequence[Action],
    states: Sequence[State],
) -> Trace:
    """Replay the actions and states a file records, under the rule ``expression``
    and ``paths``; an ``InputError`` naming ``path`` if they do not check out."""
    from checker.engines.bmc import SmtTrace
    from checker.engines.certify import replay
    from checker.model import System
    from checker.rules.specs import adhoc_rule

    if len(states) != len(actions) + 1:
        raise InputError(f"{path}: {len(actions)} steps but {len(states)} states")
    try:
        rule = adhoc_rule(expression, rule_name)
    except InputError as exc:
        message = " ".join(str(exc).split())
        raise InputError(f"{path}: its rule expression does not parse ({message})") from None
    except RecursionError:
        # a crafted expression nested thousands deep: no rule is written like that
        raise InputError(
            f"{path}: its rule expression is nested too deeply to parse; "
            "regenerate it with the command in its metadata"
        ) from None
    try:
        return replay(
            System(rule, paths, states[0].shape if states else Shape()),
            rule_name,
            prop,
            SmtTrace(tuple(actions), tuple(states)),
            error=InputError,
        )
    except InputError as exc:
        raise InputError(f"{path}: {exc}; regenerate it with the command in its metadata") from None
    except RecursionError:
        raise InputError(
            f"{path}: its rule expression is nested too deeply to evaluate; "
            "regenerate it with the command in its metadata"
        ) from None
