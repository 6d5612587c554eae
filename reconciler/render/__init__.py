"""Renderers: they read results and print them; they never compute."""
