"""Shared building blocks for the recipes: data, models, metrics, training, reporting.

One module per concern; recipes import what they need and read top to bottom.
"""
