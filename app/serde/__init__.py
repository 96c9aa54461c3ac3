"""Confluent wire format, schema-registry lookups and Avro encoding/decoding."""
