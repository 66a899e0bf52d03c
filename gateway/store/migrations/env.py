"""Alembic environment: runs migrations on the engine handed over by gateway.store.engine."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine

from gateway.store.tables import metadata

engine = context.config.attributes.get("engine")
if not isinstance(engine, Engine):
    from gateway.store.engine import make_engine

    url = context.config.get_main_option("sqlalchemy.url")
    assert url, "set sqlalchemy.url or pass an engine"
    engine = make_engine(url)

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        # SQLite can roll DDL back too (we issue BEGIN ourselves): a power cut or kill -9 in
        # the middle of a migration leaves the old schema, not half of the new one.
        transactional_ddl=True,
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
