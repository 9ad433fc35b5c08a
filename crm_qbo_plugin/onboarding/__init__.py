"""A tenant's connection to a QuickBooks company: connect, tokens, company facts, unlink."""
