"""The application's database schema: one Alembic history for the clinical and the web tables.

The migrations sit above both layers because the schema holds both; `neurotriage.clinical.db`
runs them and checks every connection against their head revision.
"""

from pathlib import Path

MIGRATIONS = Path(__file__).parent / "migrations"
