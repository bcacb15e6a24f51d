"""Expressivity (PHYSICS.md §9): universal approximation measured, and Kolmogorov–Arnold networks."""
