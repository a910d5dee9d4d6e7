"""Alembic environment: runs on the connection handed over by watcher.db.migrate."""

from __future__ import annotations

import sqlmodel
from alembic import context
from sqlalchemy import create_engine

from watcher.db import models  # noqa: F401  (registers the tables)

target_metadata = sqlmodel.SQLModel.metadata
config = context.config
connection = config.attributes.get("connection")

if connection is not None:
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
else:  # `alembic revision --autogenerate` from the command line, with a sync URL
    url = config.get_main_option("sqlalchemy.url") or "sqlite:///./migrations-scratch.db"
    with create_engine(url).connect() as conn:
        context.configure(connection=conn, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        conn.commit()
