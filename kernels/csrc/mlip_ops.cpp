// mlip's operators for TorchScript files run without Python: mlip::block_aggregate and mlip::grid_mlp,
// with the CPU implementations of mlip.kernels.block_sparse and mlip.kernels.grid_mlp (the sparse BLAS
// product and its edge products, the grid MLP on the harmonic coefficients by blocks of atoms) and
// their first-order backward; the torch reference on other devices and dtypes. In Python, importing
// mlip registers the same operators (same schemas, same numbers); a C++ program that loads an
// exported file compiles this file in (LAMMPS's pair_style mlip, examples/cpp).
#include <ATen/ATen.h>
#include <torch/autograd.h>
#include <torch/library.h>

#include <memory>
#include <mutex>
#include <vector>

namespace {

using at::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

constexpr int64_t EDGE_CHUNK = 1024;  // padded edge slots per block of targets in the edge products
constexpr int64_t GRID_NODES = 64;    // atoms per block of the grid MLP

bool cpu_float(const Tensor& x) {
  return x.device().is_cpu() && (x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble);
}

// ---- block_aggregate: out[i] = sum over edges e with target[e] == i of blocks[e] @ x[source[e]] ----

struct TargetBlock {
  int64_t first, last, start, stop, degree;
  Tensor senders, valid;  // valid undefined: every slot holds an edge
};

// Where the blocks sit (mlip.kernels.block_sparse.BlockPattern): edges sorted by target, row pointers.
struct Pattern {
  Tensor order, columns, rows;  // order undefined: the edges already sorted by target
  int64_t num_targets, num_sources;
  std::vector<TargetBlock> blocks;
  bool blocks_made = false;

  Pattern(const Tensor& target, const Tensor& source, int64_t num_targets, int64_t num_sources)
      : num_targets(num_targets), num_sources(num_sources) {
    const int64_t e = target.size(0);
    if (e > 1 && (target.slice(0, 1) < target.slice(0, 0, e - 1)).any().item<bool>()) {
      order = at::argsort(target, /*stable=*/true);
    }
    columns = (order.defined() ? source.index_select(0, order) : source).contiguous();
    Tensor counts = at::bincount(target, {}, num_targets);
    rows = at::cat({counts.new_zeros({1}), counts.cumsum(0)});
  }

  Tensor padded_senders(const Tensor& r, int64_t degree, Tensor& valid) const {
    Tensor slots = r.slice(0, 0, -1).unsqueeze(1) + at::arange(degree, r.options());
    valid = (slots < r.slice(0, 1).unsqueeze(1)).reshape(-1);
    Tensor clamped = slots.reshape(-1).clamp_max(std::max<int64_t>(columns.size(0) - 1, 0));
    return at::where(valid, columns.index_select(0, clamped), at::full_like(clamped, num_sources));
  }

  Tensor matmul(Tensor blocks, const Tensor& x) const {
    const int64_t a = blocks.size(1), b = blocks.size(2), c = x.size(2), e = blocks.size(0);
    if (e == 0 || c == 0) return x.new_zeros({num_targets, a, c});
    if (order.defined()) blocks = blocks.contiguous().index_select(0, order);
    Tensor features = x.reshape({num_sources * b, c}).contiguous();
    if (a == b) {
      Tensor matrix = at::_sparse_bsr_tensor_unsafe(rows, columns, blocks.contiguous(),
                                                    {num_targets * a, num_sources * b},
                                                    blocks.options().layout(at::kSparseBsr));
      return matrix.matmul(features).view({num_targets, a, c});
    }
    // MKL's BSR takes square blocks only: CSR with rows (a, i), values the blocks' transpose (A, E, B)
    Tensor offsets = at::arange(a, rows.options()).unsqueeze(1) * e + rows.slice(0, 0, -1);
    Tensor csr_rows = at::cat({offsets.reshape(-1), offsets.new_full({1}, a * e)}) * b;
    Tensor csr_columns = (columns.unsqueeze(1) * b + at::arange(b, columns.options())).reshape(-1).repeat({a});
    Tensor matrix = at::_sparse_csr_tensor_unsafe(csr_rows, csr_columns, blocks.permute({1, 0, 2}).reshape(-1),
                                                  {a * num_targets, num_sources * b},
                                                  blocks.options().layout(at::kSparseCsr));
    return matrix.matmul(features).view({a, num_targets, c}).transpose(0, 1);
  }

  const std::vector<TargetBlock>& target_blocks() {
    if (!blocks_made) {
      Tensor counts = rows.diff();
      const int64_t most = counts.numel() ? counts.max().item<int64_t>() : 1;
      const int64_t per_block = std::max<int64_t>(1, EDGE_CHUNK / std::max<int64_t>(1, most));
      for (int64_t first = 0; first < num_targets; first += per_block) {
        const int64_t last = std::min(first + per_block, num_targets);
        const int64_t start = rows[first].item<int64_t>(), stop = rows[last].item<int64_t>();
        if (start == stop) continue;
        const int64_t degree = counts.slice(0, first, last).max().item<int64_t>();
        Tensor valid;
        Tensor senders = padded_senders(rows.slice(0, first, last + 1), degree, valid);
        Tensor slots = valid.all().item<bool>() ? Tensor() : valid.nonzero().flatten();
        blocks.push_back({first, last, start, stop, degree, senders, slots});
      }
      blocks_made = true;
    }
    return blocks;
  }

  // h[e] = g[target[e]] @ x[source[e]]^T: (N_t, A, C), (N_s, B, C) -> (E, A, B), by blocks of targets
  Tensor edge_products(const Tensor& g, const Tensor& x) {
    const int64_t edges = columns.size(0), a = g.size(1), b = x.size(1);
    Tensor out = g.new_empty({edges, a, b});
    if (edges == 0) return out;
    Tensor padded = at::cat({x, x.new_zeros({1, b, x.size(2)})});
    int64_t slots = 0;
    for (const TargetBlock& blk : target_blocks()) slots = std::max(slots, blk.senders.numel());
    Tensor buffer = x.new_empty({slots, b, x.size(2)});  // one buffer for every block's senders
    for (const TargetBlock& blk : target_blocks()) {
      const int64_t n = blk.last - blk.first;
      Tensor gathered = buffer.slice(0, 0, blk.senders.numel());
      at::index_select_out(gathered, padded, 0, blk.senders);
      gathered = gathered.view({n, blk.degree * b, -1});
      Tensor products = at::bmm(g.slice(0, blk.first, blk.last), gathered.transpose(1, 2));
      products = products.view({n, a, blk.degree, b}).transpose(1, 2).reshape({-1, a, b});
      if (blk.valid.defined()) products = products.index_select(0, blk.valid);
      if (order.defined()) {
        out.index_copy_(0, order.slice(0, blk.start, blk.stop), products);
      } else {
        out.slice(0, blk.start, blk.stop).copy_(products);
      }
    }
    return out;
  }
};

// One pattern per edge_index tensor (and its transpose), reused while the same tensor comes back
// unchanged: the layers of one call share it.
struct PatternCache {
  std::mutex mutex;
  Tensor edge_index;
  uint32_t version = 0;
  int64_t num_targets = -1, num_sources = -1;
  std::shared_ptr<Pattern> forward, transposed;

  std::shared_ptr<Pattern> get(const Tensor& ei, int64_t nt, int64_t ns, bool transpose) {
    std::lock_guard<std::mutex> lock(mutex);
    if (!edge_index.defined() || edge_index.unsafeGetTensorImpl() != ei.unsafeGetTensorImpl() ||
        version != ei._version() || num_targets != nt || num_sources != ns) {
      edge_index = ei;
      version = ei._version();
      num_targets = nt;
      num_sources = ns;
      forward = std::make_shared<Pattern>(ei[1], ei[0], nt, ns);
      transposed.reset();
    }
    if (!transpose) return forward;
    if (!transposed) transposed = std::make_shared<Pattern>(ei[0], ei[1], ns, nt);
    return transposed;
  }
};

PatternCache& pattern_cache() {
  static PatternCache cache;
  return cache;
}

void save_pattern(AutogradContext* ctx, const Tensor& ei, int64_t nt, int64_t ns, bool transpose) {
  ctx->saved_data["edge_index"] = ei;
  ctx->saved_data["num_targets"] = nt;
  ctx->saved_data["num_sources"] = ns;
  ctx->saved_data["transposed"] = transpose;
}

struct PatternArgs {
  Tensor ei;
  int64_t nt, ns;
  bool transposed;
};

PatternArgs saved_pattern(AutogradContext* ctx) {
  return {ctx->saved_data["edge_index"].toTensor(), ctx->saved_data["num_targets"].toInt(),
          ctx->saved_data["num_sources"].toInt(), ctx->saved_data["transposed"].toBool()};
}

struct EdgeProducts;

// (E, A, B) blocks times (N_s, B, C) -> (N_t, A, C); each backward is the other's forward.
struct Aggregate : public torch::autograd::Function<Aggregate> {
  static Tensor forward(AutogradContext* ctx, const Tensor& blocks, const Tensor& x, const Tensor& ei, int64_t nt,
                        int64_t ns, bool transpose) {
    ctx->save_for_backward({blocks, x});
    save_pattern(ctx, ei, nt, ns, transpose);
    return pattern_cache().get(ei, nt, ns, transpose)->matmul(blocks, x);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads);
};

struct EdgeProducts : public torch::autograd::Function<EdgeProducts> {
  static Tensor forward(AutogradContext* ctx, const Tensor& g, const Tensor& x, const Tensor& ei, int64_t nt,
                        int64_t ns, bool transpose) {
    ctx->save_for_backward({g, x});
    save_pattern(ctx, ei, nt, ns, transpose);
    return pattern_cache().get(ei, nt, ns, transpose)->edge_products(g, x);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    PatternArgs p = saved_pattern(ctx);
    Tensor grad = grads[0].contiguous(), grad_g, grad_x;
    if (ctx->needs_input_grad(0)) grad_g = Aggregate::apply(grad, saved[1], p.ei, p.nt, p.ns, p.transposed);
    if (ctx->needs_input_grad(1)) {
      grad_x = Aggregate::apply(grad.transpose(1, 2), saved[0], p.ei, p.nt, p.ns, !p.transposed);
    }
    return {grad_g, grad_x, Tensor(), Tensor(), Tensor(), Tensor()};
  }
};

variable_list Aggregate::backward(AutogradContext* ctx, variable_list grads) {
  auto saved = ctx->get_saved_variables();
  PatternArgs p = saved_pattern(ctx);
  Tensor grad = grads[0].contiguous(), grad_blocks, grad_x;
  if (ctx->needs_input_grad(0)) grad_blocks = EdgeProducts::apply(grad, saved[1], p.ei, p.nt, p.ns, p.transposed);
  if (ctx->needs_input_grad(1)) {
    grad_x = Aggregate::apply(saved[0].transpose(1, 2), grad, p.ei, p.nt, p.ns, !p.transposed);
  }
  return {grad_blocks, grad_x, Tensor(), Tensor(), Tensor(), Tensor()};
}

Tensor block_aggregate(const Tensor& blocks, const Tensor& x, const Tensor& edge_index, int64_t num_targets) {
  if (cpu_float(x)) return Aggregate::apply(blocks, x, edge_index, num_targets, x.size(0), false);
  Tensor messages = at::bmm(blocks, x.index_select(0, edge_index[0]));
  return x.new_zeros({num_targets, blocks.size(1), x.size(2)}).index_add(0, edge_index[1], messages);
}

// ---- grid_mlp: from_grid @ [((to_grid @ x) left_w^T + left_b) * ((to_grid @ x) right_w^T + right_b)] out_w^T ----

Tensor grid_mlp_reference(const Tensor& x, const Tensor& to_grid, const Tensor& from_grid, const Tensor& left_w,
                          const Tensor& left_b, const Tensor& right_w, const Tensor& right_b, const Tensor& out_w) {
  const int64_t n = x.size(0), p = to_grid.size(0);
  Tensor g = at::matmul(to_grid, x).reshape({n * p, x.size(2)});
  Tensor hidden = at::linear(g, left_w, left_b) * at::linear(g, right_w, right_b);
  return at::matmul(from_grid, at::linear(hidden, out_w).view({n, p, out_w.size(0)}));
}

// the biases ride on the constant harmonic's coefficient where to_grid's first column is one value
bool bias_folded(const Tensor& to_grid) {
  Tensor constant = to_grid.select(1, 0);
  return (constant == constant[0]).all().item<bool>() && (constant[0] != 0).item<bool>();
}

// both linear maps on the harmonic coefficients, (N, S, 2H)
Tensor coefficients_of(const Tensor& x, const Tensor& to_grid, const Tensor& both, const Tensor& bias, bool folded) {
  const int64_t n = x.size(0), s = x.size(1), c = x.size(2);
  Tensor coefficients = at::matmul(x.reshape({n * s, c}), both.t()).view({n, s, both.size(0)});
  if (folded) coefficients.select(1, 0).add_(bias / to_grid[0][0]);
  return coefficients;
}

Tensor grid_values(const Tensor& coefficients, const Tensor& to_grid, const Tensor& bias, bool folded) {
  if (folded) return at::matmul(to_grid, coefficients);
  return at::baddbmm(bias, to_grid.expand({coefficients.size(0), -1, -1}), coefficients);
}

struct GridMLP : public torch::autograd::Function<GridMLP> {
  static Tensor forward(AutogradContext* ctx, const Tensor& x_in, const Tensor& to_grid_in,
                        const Tensor& from_grid_in, const Tensor& left_w, const Tensor& left_b, const Tensor& right_w,
                        const Tensor& right_b, const Tensor& out_w_in) {
    auto cast = [&](const Tensor& t) { return t.to(x_in.scalar_type()).contiguous(); };
    Tensor x = x_in.contiguous(), to_grid = cast(to_grid_in), from_grid = cast(from_grid_in), out_w = cast(out_w_in);
    Tensor both = at::cat({cast(left_w), cast(right_w)}), bias = at::cat({cast(left_b), cast(right_b)});
    const int64_t n = x.size(0), h = left_w.size(0);
    const bool folded = bias_folded(to_grid);
    Tensor coefficients = coefficients_of(x, to_grid, both, bias, folded);
    Tensor back = x.new_empty({n, from_grid.size(0), h});
    for (int64_t start = 0; start < n; start += GRID_NODES) {
      const int64_t stop = std::min(start + GRID_NODES, n);
      Tensor grid = grid_values(coefficients.slice(0, start, stop), to_grid, bias, folded);
      Tensor out = back.slice(0, start, stop);
      at::matmul_out(out, from_grid, grid.slice(2, 0, h) * grid.slice(2, h));
    }
    ctx->save_for_backward({x, to_grid, from_grid, both, bias, out_w});
    ctx->saved_data["coefficients"] = coefficients;  // an intermediate, never part of the autograd graph
    ctx->saved_data["folded"] = folded;
    return at::matmul(back.view({-1, h}), out_w.t()).view({n, from_grid.size(0), out_w.size(0)});
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const Tensor &x = saved[0], &to_grid = saved[1], &from_grid = saved[2], &both = saved[3], &bias = saved[4],
                 &out_w = saved[5];
    const int64_t n = x.size(0), s = x.size(1), c = x.size(2), h = both.size(0) / 2;
    Tensor grad = grads[0].to(x.scalar_type()).contiguous(), dx;
    Tensor d_back = at::matmul(grad.reshape({-1, grad.size(-1)}), out_w).view({n, from_grid.size(0), h});
    if (at::GradMode::is_enabled()) {  // a gradient of this gradient wanted: differentiable ops throughout
      const bool folded = ctx->saved_data["folded"].toBool();
      Tensor grid = grid_values(coefficients_of(x, to_grid, both, bias, folded), to_grid, bias, folded);
      Tensor d_hidden = at::matmul(from_grid.t(), d_back);
      Tensor d_grid = at::cat({d_hidden * grid.slice(2, h), d_hidden * grid.slice(2, 0, h)}, 2);
      dx = at::matmul(at::matmul(to_grid.t(), d_grid).view({n * s, 2 * h}), both).view({n, s, c});
    } else {
      Tensor coefficients = ctx->saved_data["coefficients"].toTensor();
      const bool folded = ctx->saved_data["folded"].toBool();
      Tensor d_coefficients = x.new_empty({n, s, 2 * h});
      Tensor to_grid_t = to_grid.t(), from_grid_t = from_grid.t();
      Tensor d_grid = x.new_empty({std::min(n, GRID_NODES), to_grid.size(0), 2 * h});
      for (int64_t start = 0; start < n; start += GRID_NODES) {
        const int64_t stop = std::min(start + GRID_NODES, n), k = stop - start;
        Tensor grid = grid_values(coefficients.slice(0, start, stop), to_grid, bias, folded);
        Tensor d_hidden = at::matmul(from_grid_t, d_back.slice(0, start, stop));
        Tensor block = d_grid.slice(0, 0, k);
        Tensor left = block.slice(2, 0, h), right = block.slice(2, h);
        at::mul_out(left, d_hidden, grid.slice(2, h));
        at::mul_out(right, d_hidden, grid.slice(2, 0, h));
        Tensor out = d_coefficients.slice(0, start, stop);
        at::matmul_out(out, to_grid_t, block);
      }
      dx = at::matmul(d_coefficients.view({n * s, 2 * h}), both).view({n, s, c});
    }
    return {dx, Tensor(), Tensor(), Tensor(), Tensor(), Tensor(), Tensor(), Tensor()};
  }
};

Tensor grid_mlp(const Tensor& x, const Tensor& to_grid, const Tensor& from_grid, const Tensor& left_w,
                const Tensor& left_b, const Tensor& right_w, const Tensor& right_b, const Tensor& out_w) {
  bool weights_need_grad = false;
  for (const Tensor* t : {&to_grid, &from_grid, &left_w, &left_b, &right_w, &right_b, &out_w}) {
    weights_need_grad = weights_need_grad || t->requires_grad();
  }
  if (cpu_float(x) && x.size(0) > 0 && !(weights_need_grad && at::GradMode::is_enabled())) {
    return GridMLP::apply(x, to_grid, from_grid, left_w, left_b, right_w, right_b, out_w);
  }
  auto cast = [&](const Tensor& t) { return t.to(x.scalar_type()); };
  return grid_mlp_reference(x, cast(to_grid), cast(from_grid), cast(left_w), cast(left_b), cast(right_w),
                            cast(right_b), cast(out_w));
}

}  // namespace

TORCH_LIBRARY(mlip, m) {
  m.def("block_aggregate(Tensor blocks, Tensor x, Tensor edge_index, int num_targets) -> Tensor", &block_aggregate);
  m.def("grid_mlp(Tensor x, Tensor to_grid, Tensor from_grid, Tensor left_w, Tensor left_b, Tensor right_w, "
        "Tensor right_b, Tensor out_w) -> Tensor",
        &grid_mlp);
}
