"""Keyed flows: what each flow reads and writes around its domain step, with no Faust and no I/O.

A flow's step takes the tables it reads (mappings of bytes to bytes), the input and the context,
and returns a ``Step``: the table writes and the outputs of that input. The engine runs steps with
an outbox over Faust tables (``app/engine/keyed.py``); ``tests/support/driver.py`` runs the same
steps over dicts, without Kafka.
"""
