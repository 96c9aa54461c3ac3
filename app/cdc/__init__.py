"""CDC envelopes (Debezium raw and unwrapped) → canonical row changes, via declarative mappings."""
