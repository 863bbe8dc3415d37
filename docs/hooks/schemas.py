"""MkDocs hook: the JSON Schemas of the files segtrain writes, generated from the dataclasses that write them.

A page writes `<!-- schema: segtrain.state.manifest:RunManifest -->` on a line of its own, and the built page
has there the JSON Schema of that dataclass as `segtrain.telemetry.schema.schema_of` derives it (the one that
`segtrain report --json`'s schema comes from), so a field added to a file is on the page the moment it exists.
`extra` (the keys of another version, which a reader keeps as they were) is not a key of the file: it is left
out, and the object allows other keys. `<!-- schema: report -->` is the report's own `JSON_SCHEMA`.
"""

from __future__ import annotations

import importlib
import json
import re
from typing import Any

MARKER = re.compile(r"^<!-- schema: (?P<target>[\w.]+(?::\w+)?) -->$", re.MULTILINE)


def schema(target: str) -> dict[str, Any]:
    from segtrain.telemetry.schema import JSON_SCHEMA, schema_of

    if target == "report":
        return JSON_SCHEMA
    module, _, name = target.partition(":")
    result = schema_of(getattr(importlib.import_module(module), name))
    if "extra" in result.get("properties", {}):
        result = dict(result, properties={k: v for k, v in result["properties"].items() if k != "extra"})
        result["required"] = [k for k in result["required"] if k != "extra"]
        result["additionalProperties"] = True
    return result


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    def block(match: re.Match[str]) -> str:
        text = json.dumps(schema(match.group("target")), indent=2)
        return (
            f'??? note "JSON Schema (generated from `{match.group("target")}`)"\n\n    ```json\n'
            + "\n".join(f"    {line}" for line in text.splitlines())
            + "\n    ```\n"
        )

    return MARKER.sub(block, markdown)
