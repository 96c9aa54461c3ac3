"""Declarative CRM-column → canonical-field mappings, one TOML file per source table (data only)."""
