"""The plumbing floor: services, locks, the job queue, per-realm QBO clients, connection status."""
