"""The only package that knows Faust, mode, aiokafka and librdkafka's producer.

The Faust app and its worker (``app``, ``worker``), the librdkafka producer (``producer``), the
consumer's drain-loop and seek fixes (``consumer``), the buffered stream topic (``stream_topic``),
changelog tables (``table``, ``tables``), Faust's Prometheus sensors (``sensors``), the per-process
resources the agents share (``runtime``, ``reference_store``), what runs around every agent's
per-event work (``guard``) and how domain outputs reach the wire (``outputs``), and the worker's
HTTP pages (``web``). ``tests/unit/test_pinned_internals.py`` pins every private internal these
rely on against the pinned versions, so an upgrade fails in one place.
"""
