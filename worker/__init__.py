"""The RQ worker: takes submissions off the queue and stores them in PostgreSQL."""
