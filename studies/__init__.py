"""Optuna-driven and sweep studies over trainer jobs (target-entropy search, horizon sweep,
model generalisation). They drive ``harness`` runs and read their run directories."""
