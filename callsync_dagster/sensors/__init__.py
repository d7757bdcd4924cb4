"""Sensors: the triggers that launch sync runs when work appears."""
