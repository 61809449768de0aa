"""Reconciliation: rules -> SQL -> drift and findings (check), and later repair and sync."""
