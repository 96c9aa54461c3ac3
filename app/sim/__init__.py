"""Simulators: pure builders of the records that external systems put on the wire."""
