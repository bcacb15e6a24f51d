"""Neural-network field theory: free fields by design, reflection positivity, symmetries from densities."""

from .free import free_scalar as free_scalar, gaussian_free_field as gaussian_free_field
from .free import gaussian_propagator as gaussian_propagator, scalar_propagator as scalar_propagator
from .reflection import ReflectionPositivity as ReflectionPositivity, reflection_positivity as reflection_positivity
from .reflection import time_lattice as time_lattice
from .symmetry import SymmetryTest as SymmetryTest, Transform as Transform, output_rotation as output_rotation
from .symmetry import random_rotation as random_rotation, reflection_z2 as reflection_z2, rotation as rotation
from .symmetry import symmetry_test as symmetry_test, translation as translation

__all__ = ["free_scalar", "gaussian_free_field", "gaussian_propagator", "scalar_propagator",
           "ReflectionPositivity", "reflection_positivity", "time_lattice", "SymmetryTest", "Transform",
           "output_rotation", "random_rotation", "reflection_z2", "rotation", "symmetry_test", "translation"]
