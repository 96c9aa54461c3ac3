"""Opportunity to order: the assembled deal, its completeness, the order decisions, and when it may be forgotten."""
