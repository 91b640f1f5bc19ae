"""Helpers shared by the scripts that regenerate rules/schemas/."""
import json
import re

REFERENCE = re.compile(r"#/\$defs/([A-Za-z0-9_.\-]+)")


def closure(defs, roots):
    """The definitions reachable from `roots` through `$ref`s, by name."""
    seen, stack = set(), list(roots)
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        stack.extend(REFERENCE.findall(json.dumps(defs[name])))
    return {name: defs[name] for name in sorted(seen)}
