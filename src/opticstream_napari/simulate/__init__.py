"""Acquisition simulator: writes raw data as the instruments do, with the ground truth beside it."""
