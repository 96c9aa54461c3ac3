"""Exceptions: taxonomy, retry tiers, escalation routing, and the ledger's state per exception."""
