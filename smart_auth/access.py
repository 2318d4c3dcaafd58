"""Moved to `smart_auth.resource_server.access`. Kept only for the type-only import in
`smart_auth/audit.py` until audit leaves smart_auth (issue 7, item 5); delete then."""

from smart_auth.resource_server.access import Access

__all__ = ["Access"]
