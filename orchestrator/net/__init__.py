"""Network machinery shared by every venue: backoff, budgets, watchdog, WebSocket and REST."""
