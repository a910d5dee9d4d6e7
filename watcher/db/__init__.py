"""Storage: tables, async engine, migrations."""
