"""Applying a plan to a site."""
