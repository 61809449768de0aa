"""Integrations with the frameworks trueup's users build on (each an optional extra)."""
