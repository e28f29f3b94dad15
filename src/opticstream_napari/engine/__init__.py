"""The engine: watches acquisition folders and drives processing through the state service."""
