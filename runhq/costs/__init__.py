"""AI costs: per-run estimated vs actual, monthly totals, budgets."""
