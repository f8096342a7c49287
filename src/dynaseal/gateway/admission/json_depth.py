"""How deeply a parsed JSON body nests, measured without recursion.

orjson parses up to 1,024 levels but serialises only 255, and the gateway serialises
parts of the body again (the prompt estimate, the body it forwards): a body nested
between the two limits used to fail with a 500 after its budget was reserved. Admission
refuses anything deeper than a chat request plausibly needs, so nothing later recurses
far.
"""

from __future__ import annotations

from typing import Any

#: Deeper than any real chat request: a tool schema ten objects deep is about 25 levels.
MAX_DEPTH = 64


def deeper_than(value: Any, limit: int) -> bool:
    """Whether ``value`` nests lists and objects more than ``limit`` levels deep."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False
