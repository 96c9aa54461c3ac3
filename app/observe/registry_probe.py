"""Is the schema registry answering? Probed at most every few seconds; feeds a gauge and ``/ready``.

The probe asks for the supported schema types (``/schemas/types``, Confluent API 5.5+ and Apicurio's
ccompat): a reply of a few bytes, where ``/subjects`` lists every subject (42 kB for the local
registry's thousand subjects).
"""

from __future__ import annotations

import time

import httpx

from app.client_config import registry_http
from app.observe import metrics
from app.settings import get_settings

_registry = {"up": False, "checked": 0.0}


async def registry_reachable(max_age_s: float = 10.0) -> bool:
    if time.monotonic() - _registry["checked"] > max_age_s:
        s = get_settings()
        url = s.registry_url.rstrip("/")
        try:
            async with httpx.AsyncClient(timeout=5, **registry_http(s)) as client:
                up = (await client.get(f"{url}/schemas/types")).status_code == 200
        except Exception:
            up = False
        _registry.update(up=up, checked=time.monotonic())
        metrics.registry_up.set(1 if up else 0)
    return _registry["up"]
