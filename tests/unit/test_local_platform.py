"""The local platform's own pieces that need no process to test."""

from __future__ import annotations

import uuid

from app.platform.local import new_cluster_id


def test_a_kraft_cluster_id_never_starts_with_a_dash():
    """kafka-storage took '-9x…' for an option and a fresh broker failed to format (the CI run of 7 Dec)."""
    dash_first = uuid.UUID(bytes=b"\xf8" + b"\x00" * 15)  # base64url of 0xf8… begins with '-'
    ids = iter([dash_first, uuid.UUID(int=1)])
    cluster_id = new_cluster_id(lambda: next(ids))
    assert not cluster_id.startswith("-") and len(cluster_id) == 22
    assert all(not new_cluster_id().startswith("-") for _ in range(2000))
