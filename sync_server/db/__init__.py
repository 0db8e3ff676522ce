"""The hub's database: schema, engines for SQLite and PostgreSQL, migrations."""
