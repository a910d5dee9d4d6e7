"""Payments: creation, idempotency, limits, states and their events."""
