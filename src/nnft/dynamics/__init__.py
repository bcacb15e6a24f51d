"""Dynamics (PHYSICS.md §7–8, §10): empirical and infinite-width NTK, kernel-regression and gradient-flow
predictions, training of network ensembles, parameterizations (SP/NTK/MF/μP), coordinate checks, phases."""
