"""The CRM's JSON API under /api/, described by the OpenAPI document at /api/openapi.json."""
