"""Pure desired-state builders, one module per kind. No I/O, clock, environment or logging."""
