"""Pure domain logic: no Faust, no Kafka, no HTTP. Imports only the standard library and pydantic."""
