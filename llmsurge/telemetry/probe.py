"""Which telemetry sources a run would find (for ``llmsurge check``)."""

from __future__ import annotations

from typing import Any


async def probe_sources(client: Any, target: Any) -> dict[str, str]:
    """source → 'available: …' or 'not available: why'."""
    out: dict[str, str] = {}
    try:
        resp = await client.get(target.base_url + "/metrics", timeout=3.0)
        out["server /metrics"] = (
            f"available ({len(resp.text.splitlines())} lines)"
            if resp.status_code == 200
            else f"not available: HTTP {resp.status_code}"
        )
    except Exception as exc:
        out["server /metrics"] = f"not available: {type(exc).__name__}"
    return out
