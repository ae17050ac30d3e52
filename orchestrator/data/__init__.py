"""Data plane: fixed-layout event records, the bus, Celery workers and the archive."""
