"""Jobs on shared compute: specs, the DB-backed queue with leases, handlers and executors."""
