"""Keeping the report folders and the database in agreement: `sweep` (start-up) and `check` (on demand)."""
