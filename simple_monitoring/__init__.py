"""Operator tools for a Pixelfleet fleet: check, metrics, a live dashboard, stress.

They speak only HTTP to the API (never Redis), so they run from anywhere.
"""
