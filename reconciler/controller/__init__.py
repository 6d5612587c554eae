"""The controller: a level-triggered reconciliation loop with a lease, status and metrics."""
