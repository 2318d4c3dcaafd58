"""The resource-server check on /fhir, /dicomweb and /wado: a bearer token in (`Guard`, from this
server's own token store or an external authorization server), an `Access` out, and what that
access may do and see (SMART scopes, FHIR patient compartment).

It never imports `smart_auth.server`: it runs alone in resource-server-only (external) mode."""
