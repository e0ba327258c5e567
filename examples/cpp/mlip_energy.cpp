// Energy, forces and stress of one structure from an mlip TorchScript export, with libtorch only.
//
//   mlip export CKPT --format torchscript --out model.pt
//   ./mlip_energy model.pt structure.txt
//
// Built with mlip's operators (kernels/csrc/mlip_ops.cpp) compiled in: see CMakeLists.txt.
//
// structure.txt: a first line "a1x a1y a1z a2x a2y a2z a3x a3y a3z pbc_x pbc_y pbc_z" (cell rows in
// Å, all zero for a molecule; pbc 0/1), then one line "Z x y z" (Å) per atom.
// Prints the energy (eV), one line of forces (eV/Å) per atom and the stress (eV/Å^3, 3x3).
// An MD engine does the same each step, or calls model.compute(...) with its own neighbour list
// (edge_index [source, target], integer cell shifts: vector = pos[target] - pos[source] + shift @ cell).
#include <torch/script.h>

#include <fstream>
#include <iomanip>
#include <iostream>
#include <vector>

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: " << argv[0] << " model.pt structure.txt\n";
    return 2;
  }
  torch::jit::script::Module model = torch::jit::load(argv[1]);
  model.eval();

  std::ifstream in(argv[2]);
  std::vector<double> cell(9);
  std::vector<int64_t> pbc(3);
  for (auto& c : cell) in >> c;
  for (auto& p : pbc) in >> p;
  std::vector<int64_t> numbers;
  std::vector<double> positions;
  int64_t z;
  double x, y, w;
  while (in >> z >> x >> y >> w) {
    numbers.push_back(z);
    positions.insert(positions.end(), {x, y, w});
  }
  const int64_t n = static_cast<int64_t>(numbers.size());

  // the exported dtype is the model's: read it from the first floating-point parameter
  torch::Dtype dtype = torch::kFloat64;
  for (const auto& p : model.parameters()) {
    if (p.is_floating_point()) { dtype = p.scalar_type(); break; }
  }
  auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  torch::Tensor pos = torch::from_blob(positions.data(), {n, 3}, f64).to(dtype);
  torch::Tensor box = torch::from_blob(cell.data(), {3, 3}, f64).to(dtype);
  torch::Tensor z_t = torch::from_blob(numbers.data(), {n}, torch::kInt64).clone();
  torch::Tensor pbc_t = torch::from_blob(pbc.data(), {3}, torch::kInt64).to(torch::kBool);

  auto out = model.forward({pos, z_t, box, pbc_t}).toGenericDict();
  torch::Tensor energy = out.at("energy").toTensor().to(torch::kFloat64);
  torch::Tensor forces = out.at("forces").toTensor().to(torch::kFloat64);
  torch::Tensor stress = out.at("stress").toTensor().to(torch::kFloat64).reshape({3, 3});

  std::cout << std::setprecision(12) << "energy " << energy.item<double>() << "\n";
  for (int64_t i = 0; i < n; ++i) {
    std::cout << "force " << forces[i][0].item<double>() << " " << forces[i][1].item<double>() << " "
              << forces[i][2].item<double>() << "\n";
  }
  for (int64_t i = 0; i < 3; ++i) {
    std::cout << "stress " << stress[i][0].item<double>() << " " << stress[i][1].item<double>() << " "
              << stress[i][2].item<double>() << "\n";
  }
  return 0;
}
