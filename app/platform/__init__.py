"""The embedded local platform: a single-node Kafka (KRaft) broker and Apicurio Registry, from Maven Central."""
