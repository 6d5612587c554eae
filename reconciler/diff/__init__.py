"""Normalising desired and live state into one form, and comparing them."""
