"""PostgreSQL: the engine for writes, the asyncpg read pools, replica routing, migrations, bulk seeding."""
