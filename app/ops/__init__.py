"""Operator-facing jobs: catalog apply/check, schema governance, and later replay, reconcile, trace."""
