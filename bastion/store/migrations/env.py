"""Alembic environment: runs migrations on the async engine Bastion uses."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from bastion.agents import models as agent_models  # noqa: F401  (registers the agent runs table)
from bastion.batches import models as batch_models  # noqa: F401  (registers the batches table)
from bastion.experiments import models as experiment_models  # noqa: F401  (registers the experiment tables)
from bastion.files import models as file_models  # noqa: F401  (registers the files table)
from bastion.knowledge import models as knowledge_models  # noqa: F401  (registers the knowledge tables)
from bastion.redteam import models as redteam_models  # noqa: F401  (registers the red-team runs table)
from bastion.responses import models as response_models  # noqa: F401  (registers the stored-responses table)
from bastion.review import models as review_models  # noqa: F401  (registers the review and dataset tables)
from bastion.sessions import models as session_models  # noqa: F401  (registers the session tables)
from bastion.store import (
    models_jobs,  # noqa: F401  (registers the job tables for autogenerate)
    models_vault,  # noqa: F401  (registers the prompt vault tables for autogenerate)
)
from bastion.store.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async(url: str) -> None:
    engine = create_async_engine(url, poolclass=NullPool)
    async with engine.connect() as connection:
        await connection.run_sync(_run)
        await connection.commit()
    await engine.dispose()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if url is None:
        raise RuntimeError("alembic: sqlalchemy.url is not set")
    asyncio.run(_run_async(url))


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
