"""mlip: an engine for machine-learned interatomic potentials.

Public namespaces: :mod:`mlip.data` (readers, AtomicData), :mod:`mlip.graph` (neighbour lists).
Units follow ASE: Å, eV, eV/Å, stress in eV/Å^3 with ASE's sign.
"""

__version__ = "0.1.0"
