"""Pure functions between CRM shapes and QBO shapes: no I/O, no database, no Flask."""
