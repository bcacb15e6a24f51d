"""Neural-network field theory: free fields by design (any isotropic spectrum), the momentum-space check,
interactions from deformed parameter densities (reweighting, MCMC, first-order theory), reflection positivity,
symmetries from densities."""

from .free import free_scalar as free_scalar, gaussian_free_field as gaussian_free_field
from .free import gaussian_propagator as gaussian_propagator, scalar_propagator as scalar_propagator
from .spectrum import Spectrum as Spectrum, as_spectrum as as_spectrum, continuum_propagator as continuum_propagator
from .spectrum import design as design, gaussian as gaussian, massive as massive, power as power
from .spectrum import momentum_density as momentum_density, position_propagator as position_propagator
from .spectrum import spectral_cutoff as spectral_cutoff, spectral_density as spectral_density
from .momentum import MomentumSpectrum as MomentumSpectrum, momentum_spectrum as momentum_spectrum
from .momentum import predicted_spectrum as predicted_spectrum
from .potential import Box as Box, Polynomial as Polynomial, phi4 as phi4
from .perturbation import first_order as first_order, tadpole as tadpole, tree_level as tree_level
from .deform import Reweighted as Reweighted, reweight as reweight, reweight_fields as reweight_fields
from .mcmc import MCMCResult as MCMCResult, mcmc as mcmc
from .reflection import ReflectionPositivity as ReflectionPositivity, reflection_positivity as reflection_positivity
from .reflection import time_lattice as time_lattice
from .symmetry import SymmetryTest as SymmetryTest, Transform as Transform, output_rotation as output_rotation
from .symmetry import random_rotation as random_rotation, reflection_z2 as reflection_z2, rotation as rotation
from .symmetry import symmetry_test as symmetry_test, translation as translation

__all__ = ["free_scalar", "gaussian_free_field", "gaussian_propagator", "scalar_propagator",
           "Spectrum", "as_spectrum", "continuum_propagator", "design", "gaussian", "massive", "power",
           "momentum_density", "position_propagator", "spectral_cutoff", "spectral_density",
           "MomentumSpectrum", "momentum_spectrum", "predicted_spectrum",
           "Box", "Polynomial", "phi4", "first_order", "tadpole", "tree_level",
           "Reweighted", "reweight", "reweight_fields", "MCMCResult", "mcmc",
           "ReflectionPositivity", "reflection_positivity", "time_lattice", "SymmetryTest", "Transform",
           "output_rotation", "random_rotation", "reflection_z2", "rotation", "symmetry_test", "translation"]
