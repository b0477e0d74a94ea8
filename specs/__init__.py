"""The built-in specs, installed as package data so `lossgraph run discogan` works from a wheel."""
