"""Reports built offline from run directories alone: loading, rliable aggregation, figures
and the self-contained HTML comparison report."""
