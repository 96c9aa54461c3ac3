"""Agents: thin decode → domain → send loops, one module per flow; they talk only through topics."""

from app.agents import probe  # noqa: F401
