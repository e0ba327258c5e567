/* pair_style mlip: an exported mlip potential (TorchScript) as a LAMMPS pair style, loaded as a
   plugin of an installed LAMMPS (`plugin load`), built by `mlip lammps-plugin`.

   Domain decomposition: each MPI rank evaluates its owned atoms' energies on a graph of owned and
   ghost atoms, the ghosts reaching interaction_hops x cutoff (every atom an owned atom's energy can
   feel; the model states interaction_hops). Forces on ghosts go back to their owners through
   LAMMPS's reverse communication (newton pair on). Units: metal (Å, eV). */

#ifdef PAIR_CLASS
// the plugin registers the style itself (plugin.cpp)
#else

#ifndef LMP_PAIR_MLIP_H
#define LMP_PAIR_MLIP_H

#include "pair.h"

#include <torch/script.h>

#include <string>
#include <vector>

namespace LAMMPS_NS {

class PairMLIP : public Pair {
 public:
  PairMLIP(class LAMMPS *);
  ~PairMLIP() override;
  void compute(int, int) override;
  void settings(int, char **) override;
  void coeff(int, char **) override;
  void init_style() override;
  double init_one(int, int) override;

 private:
  void allocate();

  torch::jit::Module model;
  torch::Device device;
  torch::Dtype dtype;
  std::string model_path;
  double cutoff;               // Å, the model's graph cutoff
  int hops;                    // the model's interaction_hops
  std::vector<int64_t> type_z; // atomic number of each LAMMPS type (index 1..ntypes)
};

}    // namespace LAMMPS_NS

#endif
#endif
