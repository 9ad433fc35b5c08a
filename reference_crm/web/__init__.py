"""The CRM's web layer: request-scoped database session, domain-error answers, and the pages."""
