"""Parity: per-deal drift rules and alerts, aggregate parity windows, revenue at risk."""
