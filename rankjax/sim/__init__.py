"""Simulation above the data layer: the demo world and click simulation."""
