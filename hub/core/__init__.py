"""Settings, database engine, security primitives and job wake-ups of the hub."""
