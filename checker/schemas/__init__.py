"""The JSON Schemas (draft 2020-12) of the ``--json`` documents, shipped with the
package: ``check``, ``gate``, ``diff``, ``extract`` and ``synth``.

Every document names its schema in its ``schema`` field, e.g.
``kvm-flush-checker/check/1``. The number changes when a field is removed, renamed
or changes meaning; adding a field keeps it (consumers should ignore fields they do
not know).
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

#: the schema version of each command's JSON document
VERSIONS = {"check": 1, "gate": 1, "diff": 1, "extract": 1, "synth": 1}


def schema_id(command: str) -> str:
    """The ``schema`` field of ``command``'s JSON, e.g. ``kvm-flush-checker/check/1``."""
    return f"kvm-flush-checker/{command}/{VERSIONS[command]}"


def load(command: str) -> dict[str, Any]:
    """The JSON Schema of ``command``'s JSON document, as shipped in the package."""
    text = resources.files(__name__).joinpath(f"{command}.schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema
