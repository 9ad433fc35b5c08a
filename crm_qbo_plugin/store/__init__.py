"""SQLModel tables (all qbo_-prefixed) and the queries on them."""
