"""The audit trail's persistence: one `audit_event` row per audited event, any protocol."""
