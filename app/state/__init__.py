"""Where the service keeps state: Faust tables (per partition) and the reference-data store (per worker)."""
