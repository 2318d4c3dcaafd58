"""The SMART authorization server mounted at /auth (SMART App Launch 2.2, Backend Services):
authorize and consent pages, the token, introspection, revocation and launch endpoints, the
registry of clients and users, sessions, launches, keys and client assertions.

It never imports `smart_auth.resource_server`: the resource-server check sees this server's
tokens only through the narrow `ActiveTokens` protocol, filled in by `facade.wiring`."""
