"""Alembic environment: migrations run on the connection the state package hands in.

There is no alembic.ini; :mod:`opticstream_napari.state.schema` builds the configuration and
passes an open connection (already inside the transaction that serialises migrators).
"""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import opticstream_napari.state.models  # noqa: F401  (registers the tables on SQLModel.metadata)

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
