"""Database schema for callsync: SQL migrations and the code that applies them."""
