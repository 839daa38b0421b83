"""The newest /diagnostics status of one node, as the tests read it."""

from __future__ import annotations

from typing import Any


def node_status(diags: list[Any], node: str) -> dict[str, str]:
    """{'message': ..., key: value, ...} of the newest status whose name ends with ``/node``
    ({} before the node's first one)."""
    for arr in reversed(list(diags)):
        for st in arr.status:
            if st.name.endswith(f"/{node}"):
                return {"message": st.message, **{kv.key: kv.value for kv in st.values}}
    return {}
