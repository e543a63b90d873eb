"""Database upkeep jobs."""
