"""mlip inside other programs' MD engines: LAMMPS (``pair_style mlip``, a plugin built by
``mlip lammps-plugin``) and torch-sim (:mod:`mlip.integrations.torch_sim`)."""
