/* pair_style mlip: see pair_mlip.h. */

#include "pair_mlip.h"

#include "atom.h"
#include "comm.h"
#include "error.h"
#include "force.h"
#include "memory.h"
#include "neigh_list.h"
#include "neighbor.h"
#include "update.h"

#include <ATen/Parallel.h>
#include <torch/cuda.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

using namespace LAMMPS_NS;

static const char *const ELEMENTS[] = {
    "X",  "H",  "He", "Li", "Be", "B",  "C",  "N",  "O",  "F",  "Ne", "Na", "Mg", "Al", "Si", "P",  "S",
    "Cl", "Ar", "K",  "Ca", "Sc", "Ti", "V",  "Cr", "Mn", "Fe", "Co", "Ni", "Cu", "Zn", "Ga", "Ge", "As",
    "Se", "Br", "Kr", "Rb", "Sr", "Y",  "Zr", "Nb", "Mo", "Tc", "Ru", "Rh", "Pd", "Ag", "Cd", "In", "Sn",
    "Sb", "Te", "I",  "Xe", "Cs", "Ba", "La", "Ce", "Pr", "Nd", "Pm", "Sm", "Eu", "Gd", "Tb", "Dy", "Ho",
    "Er", "Tm", "Yb", "Lu", "Hf", "Ta", "W",  "Re", "Os", "Ir", "Pt", "Au", "Hg", "Tl", "Pb", "Bi", "Po",
    "At", "Rn", "Fr", "Ra", "Ac", "Th", "Pa", "U",  "Np", "Pu", "Am", "Cm", "Bk", "Cf", "Es", "Fm", "Md",
    "No", "Lr", "Rf", "Db", "Sg", "Bh", "Hs", "Mt", "Ds", "Rg", "Cn", "Nh", "Fl", "Mc", "Lv", "Ts", "Og"};
static const int NUM_ELEMENTS = sizeof(ELEMENTS) / sizeof(ELEMENTS[0]);

PairMLIP::PairMLIP(LAMMPS *lmp) :
    Pair(lmp), device(torch::kCPU), dtype(torch::kFloat64), cutoff(0.0), hops(1)
{
  single_enable = 0;
  restartinfo = 0;
  one_coeff = 1;
  manybody_flag = 1;
  ghostneigh = 1;                     // neighbour lists of ghost atoms too (message passing)
  no_virial_fdotr_compute = 1;        // the model returns the virial from its edge derivatives
  centroidstressflag = CENTROID_SAME; // per-atom virials split each edge's term between its atoms
}

PairMLIP::~PairMLIP()
{
  if (allocated) {
    memory->destroy(setflag);
    memory->destroy(cutsq);
    memory->destroy(cutghost);
  }
}

void PairMLIP::allocate()
{
  allocated = 1;
  int n = atom->ntypes + 1;
  memory->create(setflag, n, n, "pair:setflag");
  memory->create(cutsq, n, n, "pair:cutsq");
  memory->create(cutghost, n, n, "pair:cutghost");
  for (int i = 0; i < n; i++)
    for (int j = 0; j < n; j++) setflag[i][j] = 0;
}

/* pair_style mlip [device cpu|cuda] */
void PairMLIP::settings(int narg, char **arg)
{
  int iarg = 0;
  while (iarg < narg) {
    if (strcmp(arg[iarg], "device") == 0 && iarg + 1 < narg) {
      std::string name = arg[iarg + 1];
      if (name == "cuda") {
        if (!torch::cuda::is_available())
          error->all(FLERR, "pair_style mlip device cuda: this torch has no CUDA device");
        int local = comm->me % std::max<int>(1, (int) torch::cuda::device_count());
        device = torch::Device(torch::kCUDA, local);
      } else if (name == "cpu") {
        device = torch::Device(torch::kCPU);
      } else {
        error->all(FLERR, "pair_style mlip device: expected cpu or cuda, got {}", name);
      }
      iarg += 2;
    } else {
      error->all(FLERR, "pair_style mlip: unknown argument {} (usage: pair_style mlip [device cpu|cuda])",
                 arg[iarg]);
    }
  }
}

/* pair_coeff * * model.pt El1 El2 ... (an element per LAMMPS type) */
void PairMLIP::coeff(int narg, char **arg)
{
  if (!allocated) allocate();
  int ntypes = atom->ntypes;
  if (narg != 3 + ntypes)
    error->all(FLERR, "pair_coeff for mlip: expected * * <model.pt> and one element per atom type ({} types), got {} "
               "arguments", ntypes, narg);
  if (strcmp(arg[0], "*") != 0 || strcmp(arg[1], "*") != 0)
    error->all(FLERR, "pair_coeff for mlip must start with * *");
  model_path = arg[2];
  try {
    model = torch::jit::load(model_path, device);
  } catch (const c10::Error &e) {
    error->all(FLERR, "pair_style mlip: cannot load {} as an exported mlip TorchScript model "
               "(mlip export MODEL --format torchscript): {}", model_path, e.what_without_backtrace());
  }
  if (!model.find_method("lammps"))
    error->all(FLERR, "pair_style mlip: {} has no lammps() method; export it again with this mlip version",
               model_path);
  model.eval();
  cutoff = model.attr("cutoff").toDouble();
  hops = (int) model.attr("interaction_hops").toInt();
  dtype = model.attr("model").toModule().attr("reference_energies").toTensor().scalar_type();
  torch::Tensor known = model.attr("known_species").toTensor().to(torch::kCPU);

  type_z.assign(ntypes + 1, 0);
  for (int t = 1; t <= ntypes; t++) {
    const char *symbol = arg[2 + t];
    int z = 0;
    for (int k = 1; k < NUM_ELEMENTS; k++)
      if (strcmp(symbol, ELEMENTS[k]) == 0) z = k;
    if (z == 0) error->all(FLERR, "pair_coeff for mlip: {} (atom type {}) is not an element symbol", symbol, t);
    if (z >= known.size(0) || !known[z].item<bool>())
      error->all(FLERR, "pair_coeff for mlip: {} (atom type {}) is not an element {} was trained on", symbol, t,
                 model_path);
    type_z[t] = z;
  }
  for (int i = 1; i <= ntypes; i++)
    for (int j = i; j <= ntypes; j++) setflag[i][j] = 1;
  if (comm->me == 0)
    utils::logmesg(lmp, "pair_style mlip: {} (cutoff {} Å, {} interaction hops, {}, {})\n", model_path, cutoff,
                   hops, dtype == torch::kFloat64 ? "float64" : "float32", device.str());
}

void PairMLIP::init_style()
{
  if (force->newton_pair == 0) error->all(FLERR, "pair_style mlip requires newton pair on");
  if (strcmp(update->unit_style, "metal") != 0)
    error->all(FLERR, "pair_style mlip requires units metal (Å, eV, ps), not {}", update->unit_style);
  neighbor->add_request(this, NeighConst::REQ_FULL | NeighConst::REQ_GHOST);
  // ghost atoms must reach every atom an owned atom's energy can feel
  double ghost = hops * cutoff + neighbor->skin;
  if (comm->cutghostuser < ghost) {
    comm->cutghostuser = ghost;
    if (comm->me == 0)
      utils::logmesg(lmp, "pair_style mlip: ghost atoms out to {:.3f} Å ({} x {} Å + skin)\n", ghost, hops,
                     cutoff);
  }
  if (comm->nthreads > 0) at::set_num_threads(comm->nthreads);
#if defined(__GLIBC__)
  // each step's large tensors reuse the last step's pages instead of faulting fresh ones in (as
  // mlip.allocator does in Python; MLIP_MALLOC=system leaves malloc as it is)
  const char* malloc_choice = std::getenv("MLIP_MALLOC");
  if (device.is_cpu() && !(malloc_choice && strcmp(malloc_choice, "system") == 0)) {
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 2147483647);
    mallopt(M_TOP_PAD, 64 << 20);
  }
#endif
}

double PairMLIP::init_one(int i, int j)
{
  cutghost[i][j] = cutghost[j][i] = cutoff;
  return cutoff;
}

void PairMLIP::compute(int eflag, int vflag)
{
  ev_init(eflag, vflag);
  double **x = atom->x;
  double **f = atom->f;
  int *type = atom->type;
  int nlocal = atom->nlocal;
  int nall = nlocal + atom->nghost;

  auto cpu64 = torch::TensorOptions().dtype(torch::kFloat64);
  torch::Tensor pos = torch::from_blob(x[0], {nall, 3}, cpu64).clone();
  torch::Tensor numbers = torch::empty({nall}, torch::kInt64);
  auto z = numbers.accessor<int64_t, 1>();
  for (int i = 0; i < nall; i++) z[i] = type_z[type[i]];

  // edges of the full neighbour list (owned and ghost atoms) within the cutoff
  int total = list->inum + list->gnum;
  const double cutsq_model = cutoff * cutoff;
  std::vector<int64_t> source, target;
  source.reserve((size_t) total * 32);
  target.reserve((size_t) total * 32);
  for (int ii = 0; ii < total; ii++) {
    int i = list->ilist[ii];
    int *jlist = list->firstneigh[i];
    int jnum = list->numneigh[i];
    for (int jj = 0; jj < jnum; jj++) {
      int j = jlist[jj] & NEIGHMASK;
      double dx = x[j][0] - x[i][0], dy = x[j][1] - x[i][1], dz = x[j][2] - x[i][2];
      if (dx * dx + dy * dy + dz * dz < cutsq_model) {
        source.push_back(i);
        target.push_back(j);
      }
    }
  }
  int64_t nedges = (int64_t) source.size();
  torch::Tensor edges = torch::empty({2, nedges}, torch::kInt64);
  if (nedges > 0) {
    std::memcpy(edges[0].data_ptr<int64_t>(), source.data(), nedges * sizeof(int64_t));
    std::memcpy(edges[1].data_ptr<int64_t>(), target.data(), nedges * sizeof(int64_t));
  }

  std::vector<torch::jit::IValue> inputs{pos.to(device), numbers.to(device), edges.to(device), (int64_t) nlocal,
                                         (bool) vflag_atom};
  c10::IValue result;
  try {
    result = model.get_method("lammps")(inputs);
  } catch (const std::exception &e) {
    error->one(FLERR, "pair_style mlip: the model failed on this rank's {} atoms: {}", nall, e.what());
  }
  auto out = result.toGenericDict();
  auto get = [&](const char *key) {
    return out.at(key).toTensor().detach().to(torch::kCPU, torch::kFloat64).contiguous();
  };
  torch::Tensor forces = get("forces");
  auto fa = forces.accessor<double, 2>();
  for (int i = 0; i < nall; i++)
    for (int k = 0; k < 3; k++) f[i][k] += fa[i][k];
  if (eflag_global) eng_vdwl += get("energy").item<double>();
  if (eflag_atom) {
    torch::Tensor e = get("atom_energies");
    auto ea = e.accessor<double, 1>();
    for (int i = 0; i < nlocal; i++) eatom[i] += ea[i];
  }
  if (vflag_global) {
    torch::Tensor v = get("virial");
    auto va = v.accessor<double, 1>();
    for (int k = 0; k < 6; k++) virial[k] += va[k];
  }
  if (vflag_atom) {
    torch::Tensor v = get("atom_virials");
    auto va = v.accessor<double, 2>();
    for (int i = 0; i < nall; i++)
      for (int k = 0; k < 6; k++) vatom[i][k] += va[i][k];
  }
}
