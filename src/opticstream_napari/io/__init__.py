"""Readers of the instruments' raw formats and writers of our outputs; no Qt, no database."""
