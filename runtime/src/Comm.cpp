//===- Comm.cpp - Collectives between the ranks of a partitioned model -----===//
//
// Part of moe-compiler's runtime.
//
// One process per rank, started by mpirun. Open MPI is loaded with dlopen
// (RTLD_GLOBAL, which its plug-ins need), so that an executable that is not
// partitioned never depends on it. Open MPI's handles are the addresses of
// its predefined objects (ompi_mpi_comm_world, ompi_mpi_byte, ...), which
// dlsym gives directly; MPICH's integer handles are not supported.
//
// Group communicators (one per axes mask) come from MPI_Comm_split and are
// cached. The expert exchanges are MPI_Alltoall of the per-expert counts,
// then MPI_Alltoallv of the rows that exist, with a local reorder between
// source-major (the wire) and local-expert-major (the experts) orders.
//
//===----------------------------------------------------------------------===//

#include "Internal.h"

#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

namespace {

using Handle = void *;

struct Mpi {
  int (*Init)(int *, char ***);
  int (*Initialized)(int *);
  int (*Finalized)(int *);
  int (*Finalize)();
  int (*Comm_rank)(Handle, int *);
  int (*Comm_size)(Handle, int *);
  int (*Comm_split)(Handle, int, int, Handle *);
  int (*Allreduce)(const void *, void *, int, Handle, Handle, Handle);
  int (*Allgather)(const void *, int, Handle, void *, int, Handle, Handle);
  int (*Alltoall)(const void *, int, Handle, void *, int, Handle, Handle);
  int (*Alltoallv)(const void *, const int *, const int *, Handle, void *,
                   const int *, const int *, Handle, Handle);
  int (*Abort)(Handle, int);
  int (*Error_string)(int, char *, int *);
  Handle world, byte, floatType, intType, longType, sum;
};

struct State {
  Mpi mpi{};
  bool active = false;
  int rank = 0, size = 1;
  std::vector<int64_t> grid;
  std::map<int64_t, Handle> groups;
};

State &state() {
  static State s;
  return s;
}

template <typename F> bool sym(void *lib, const char *name, F &out) {
  out = reinterpret_cast<F>(dlsym(lib, name));
  return out != nullptr;
}

bool loadMpi(Mpi &m, std::string &why) {
  void *lib = nullptr;
  for (const char *name : {"libmpi.so.40", "libmpi.so"})
    if ((lib = dlopen(name, RTLD_NOW | RTLD_GLOBAL)))
      break;
  if (!lib) {
    why = std::string("cannot load Open MPI (libmpi.so.40): ") + dlerror();
    return false;
  }
  bool ok = sym(lib, "MPI_Init", m.Init) &&
            sym(lib, "MPI_Initialized", m.Initialized) &&
            sym(lib, "MPI_Finalized", m.Finalized) &&
            sym(lib, "MPI_Finalize", m.Finalize) &&
            sym(lib, "MPI_Comm_rank", m.Comm_rank) &&
            sym(lib, "MPI_Comm_size", m.Comm_size) &&
            sym(lib, "MPI_Comm_split", m.Comm_split) &&
            sym(lib, "MPI_Allreduce", m.Allreduce) &&
            sym(lib, "MPI_Allgather", m.Allgather) &&
            sym(lib, "MPI_Alltoall", m.Alltoall) &&
            sym(lib, "MPI_Alltoallv", m.Alltoallv) &&
            sym(lib, "MPI_Abort", m.Abort) &&
            sym(lib, "MPI_Error_string", m.Error_string);
  if (!ok) {
    why = "libmpi.so.40 lacks an MPI function the runtime needs";
    return false;
  }
  m.world = dlsym(lib, "ompi_mpi_comm_world");
  m.byte = dlsym(lib, "ompi_mpi_byte");
  m.floatType = dlsym(lib, "ompi_mpi_float");
  m.intType = dlsym(lib, "ompi_mpi_int");
  m.longType = dlsym(lib, "ompi_mpi_long_long_int");
  m.sum = dlsym(lib, "ompi_mpi_op_sum");
  if (!m.world || !m.byte || !m.floatType || !m.intType || !m.longType ||
      !m.sum) {
    why = "the loaded libmpi is not Open MPI (its predefined handles are "
          "missing); only Open MPI is supported";
    return false;
  }
  return true;
}

[[noreturn]] void die(const std::string &message) {
  moert_comm_abort(message.c_str(), 1);
  std::abort(); // not reached
}

void check(int rc, const char *call, const char *what) {
  if (rc == 0)
    return;
  char text[512] = {0};
  int len = 0;
  state().mpi.Error_string(rc, text, &len);
  die(std::string(call) + " failed in " + what + ": " + text);
}

/// Coordinates of world rank `r` on the grid.
std::vector<int64_t> coords(int64_t r) {
  const std::vector<int64_t> &g = state().grid;
  std::vector<int64_t> c(g.size());
  for (size_t i = g.size(); i-- > 0;) {
    c[i] = r % g[i];
    r /= g[i];
  }
  return c;
}

/// Linear index of `c` over the axes in (or not in) `mask`.
int64_t linear(const std::vector<int64_t> &c, int64_t mask, bool in) {
  int64_t v = 0;
  for (size_t a = 0; a < c.size(); ++a)
    if (bool(mask >> a & 1) == in)
      v = v * state().grid[a] + c[a];
  return v;
}

Handle group(int64_t mask, int64_t expectedSize, const char *what) {
  State &s = state();
  int64_t size = 1;
  for (size_t a = 0; a < s.grid.size(); ++a)
    if (mask >> a & 1)
      size *= s.grid[a];
  if (size != expectedSize)
    die(std::string(what) + ": the group of axes mask " +
        std::to_string(mask) + " has " + std::to_string(size) +
        " ranks, the compiled code expects " + std::to_string(expectedSize));
  if (!s.active)
    die(std::string(what) + " needs MPI, which was not started");
  auto found = s.groups.find(mask);
  if (found != s.groups.end())
    return found->second;
  std::vector<int64_t> c = coords(s.rank);
  Handle comm = nullptr;
  check(s.mpi.Comm_split(s.mpi.world, int(linear(c, mask, false)),
                         int(linear(c, mask, true)), &comm),
        "MPI_Comm_split", what);
  s.groups[mask] = comm;
  return comm;
}

int toInt(int64_t v, const char *what) {
  if (v < 0 || v > 0x7fffffff)
    die(std::string(what) + ": a message of " + std::to_string(v) +
        " bytes exceeds MPI's int count");
  return int(v);
}

} // namespace

extern "C" {

moert_status moert_comm_init(const int64_t *grid, int32_t rank) {
  State &s = state();
  s.grid.assign(grid, grid + rank);
  int64_t ranks = 1;
  std::string shape;
  for (int32_t i = 0; i < rank; ++i) {
    ranks *= grid[i];
    shape += (i ? "x" : "") + std::to_string(grid[i]);
  }
  if (ranks <= 1)
    return MOERT_OK;
  const char *world = std::getenv("OMPI_COMM_WORLD_SIZE");
  if (!world)
    return moert::fail(MOERT_ERR_UNSUPPORTED,
                       "this model is partitioned over %lld ranks (grid %s); "
                       "start it with 'mpirun -np %lld %s'",
                       (long long)ranks, shape.c_str(), (long long)ranks,
                       "<model> ...");
  if (std::atoll(world) != ranks)
    return moert::fail(MOERT_ERR_INVALID_ARGUMENT,
                       "this model is partitioned over %lld ranks (grid %s) "
                       "but mpirun started %s; use 'mpirun -np %lld'",
                       (long long)ranks, shape.c_str(), world,
                       (long long)ranks);
  std::string why;
  if (!loadMpi(s.mpi, why))
    return moert::fail(MOERT_ERR_UNSUPPORTED, "%s", why.c_str());
  int initialized = 0;
  s.mpi.Initialized(&initialized);
  if (!initialized && s.mpi.Init(nullptr, nullptr) != 0)
    return moert::fail(MOERT_ERR_DEVICE, "MPI_Init failed");
  s.mpi.Comm_rank(s.mpi.world, &s.rank);
  s.mpi.Comm_size(s.mpi.world, &s.size);
  s.active = true;
  return MOERT_OK;
}

int32_t moert_comm_world_rank(void) { return state().rank; }
int32_t moert_comm_world_size(void) { return state().size; }

int64_t moert_comm_sum_all(int64_t value) {
  State &s = state();
  if (!s.active)
    return value;
  long long in = value, out = 0;
  check(s.mpi.Allreduce(&in, &out, 1, s.mpi.longType, s.mpi.sum, s.mpi.world),
        "MPI_Allreduce", "an agreement between ranks");
  return out;
}

void moert_comm_abort(const char *message, int status) {
  State &s = state();
  std::fprintf(stderr, "error: rank %d: %s\n", s.rank, message);
  std::fflush(stderr);
  if (s.active)
    s.mpi.Abort(s.mpi.world, status);
  std::exit(status);
}

moert_status moert_comm_finalize(void) {
  State &s = state();
  if (!s.active)
    return MOERT_OK;
  s.active = false;
  s.groups.clear();
  if (s.mpi.Finalize() != 0)
    return moert::fail(MOERT_ERR_DEVICE, "MPI_Finalize failed");
  return MOERT_OK;
}

int64_t moert_comm_group_rank(int64_t axes_mask) {
  State &s = state();
  if (s.grid.empty())
    return 0;
  return linear(coords(s.rank), axes_mask, true);
}

void moert_comm_all_reduce(int64_t in, int64_t out, int64_t count,
                           int64_t dtype, int64_t axes_mask) {
  State &s = state();
  int64_t size = 1;
  for (size_t a = 0; a < s.grid.size(); ++a)
    if (axes_mask >> a & 1)
      size *= s.grid[a];
  Handle comm = group(axes_mask, size, "all_reduce");
  int n = toInt(count * 4, "all_reduce") / 4;
  auto *src = reinterpret_cast<const void *>(in);
  auto *dst = reinterpret_cast<void *>(out);
  if (dtype == MOERT_F32) {
    check(s.mpi.Allreduce(src, dst, n, s.mpi.floatType, s.mpi.sum, comm),
          "MPI_Allreduce", "all_reduce");
    return;
  }
  if (dtype != MOERT_BF16 && dtype != MOERT_F16)
    die("all_reduce: element type " +
        std::string(moert_dtype_name(moert_dtype(dtype))) +
        " is not supported");
  // 16-bit floats are summed in f32 and rounded once.
  std::vector<float> wide(static_cast<size_t>(n)), sum(static_cast<size_t>(n));
  moert_convert(src, moert_dtype(dtype), wide.data(), MOERT_F32, size_t(n));
  check(s.mpi.Allreduce(wide.data(), sum.data(), n, s.mpi.floatType,
                        s.mpi.sum, comm),
        "MPI_Allreduce", "all_reduce");
  moert_convert(sum.data(), MOERT_F32, dst, moert_dtype(dtype), size_t(n));
}

void moert_comm_all_gather(int64_t in, int64_t out, int64_t bytes,
                           int64_t group_size, int64_t axes_mask) {
  State &s = state();
  Handle comm = group(axes_mask, group_size, "all_gather");
  int n = toInt(bytes * group_size, "all_gather") / int(group_size);
  check(s.mpi.Allgather(reinterpret_cast<const void *>(in), n, s.mpi.byte,
                        reinterpret_cast<void *>(out), n, s.mpi.byte, comm),
        "MPI_Allgather", "all_gather");
}

void moert_comm_dispatch(int64_t in, int64_t offsets, int64_t out,
                         int64_t out_offsets, int64_t counts,
                         int64_t row_bytes, int64_t experts, int64_t capacity,
                         int64_t group_size, int64_t axes_mask) {
  State &s = state();
  const char *what = "moe.dispatch_exchange";
  Handle comm = group(axes_mask, group_size, what);
  int64_t g = group_size, local = experts / g;
  auto *off = reinterpret_cast<const int32_t *>(offsets);
  auto *recvCounts = reinterpret_cast<int32_t *>(counts); // [g, local]
  std::vector<int32_t> sendCounts(size_t(g * local));
  for (int64_t e = 0; e < experts; ++e)
    sendCounts[size_t(e)] = off[e + 1] - off[e];
  check(s.mpi.Alltoall(sendCounts.data(), int(local), s.mpi.intType,
                       recvCounts, int(local), s.mpi.intType, comm),
        "MPI_Alltoall", what);
  std::vector<int> sc(static_cast<size_t>(g)), sd(static_cast<size_t>(g)), rc(static_cast<size_t>(g)), rd(static_cast<size_t>(g));
  int64_t received = 0;
  for (int64_t r = 0; r < g; ++r) {
    sd[size_t(r)] = toInt(int64_t(off[r * local]) * row_bytes, what);
    sc[size_t(r)] = toInt(
        int64_t(off[(r + 1) * local] - off[r * local]) * row_bytes, what);
    int64_t rows = 0;
    for (int64_t j = 0; j < local; ++j)
      rows += recvCounts[r * local + j];
    rd[size_t(r)] = toInt(received * row_bytes, what);
    rc[size_t(r)] = toInt(rows * row_bytes, what);
    received += rows;
  }
  if (received > capacity)
    die(std::string(what) + ": received " + std::to_string(received) +
        " rows, more than the capacity " + std::to_string(capacity));
  std::vector<char> wire(static_cast<size_t>(received * row_bytes));
  check(s.mpi.Alltoallv(reinterpret_cast<const void *>(in), sc.data(),
                        sd.data(), s.mpi.byte, wire.data(), rc.data(),
                        rd.data(), s.mpi.byte, comm),
        "MPI_Alltoallv", what);
  // Source-major on the wire -> local-expert-major for the experts.
  auto *dst = reinterpret_cast<char *>(out);
  auto *dstOff = reinterpret_cast<int32_t *>(out_offsets);
  std::vector<int64_t> cursor(static_cast<size_t>(g));
  for (int64_t r = 0; r < g; ++r)
    cursor[size_t(r)] = rd[size_t(r)] / row_bytes;
  int64_t row = 0;
  for (int64_t j = 0; j < local; ++j) {
    dstOff[j] = int32_t(row);
    for (int64_t r = 0; r < g; ++r) {
      int64_t n = recvCounts[r * local + j];
      std::memcpy(dst + row * row_bytes,
                  wire.data() + cursor[size_t(r)] * row_bytes,
                  size_t(n * row_bytes));
      cursor[size_t(r)] += n;
      row += n;
    }
  }
  dstOff[local] = int32_t(row);
  std::memset(dst + row * row_bytes, 0, size_t((capacity - row) * row_bytes));
}

void moert_comm_combine(int64_t in, int64_t counts, int64_t offsets,
                        int64_t out, int64_t in_rows, int64_t out_rows,
                        int64_t row_bytes, int64_t experts, int64_t group_size,
                        int64_t axes_mask) {
  State &s = state();
  const char *what = "moe.combine_exchange";
  Handle comm = group(axes_mask, group_size, what);
  int64_t g = group_size, local = experts / g;
  auto *off = reinterpret_cast<const int32_t *>(offsets);
  auto *cnt = reinterpret_cast<const int32_t *>(counts); // [g, local]
  auto *src = reinterpret_cast<const char *>(in);
  // Where block (r, j) sits in the local-expert-major input.
  std::vector<int64_t> at(static_cast<size_t>(g * local));
  int64_t row = 0;
  for (int64_t j = 0; j < local; ++j)
    for (int64_t r = 0; r < g; ++r) {
      at[size_t(r * local + j)] = row;
      row += cnt[r * local + j];
    }
  if (row > in_rows)
    die(std::string(what) + ": the counts name " + std::to_string(row) +
        " rows, the input has " + std::to_string(in_rows));
  std::vector<char> wire(static_cast<size_t>(row * row_bytes));
  std::vector<int> sc(static_cast<size_t>(g)), sd(static_cast<size_t>(g)), rc(static_cast<size_t>(g)), rd(static_cast<size_t>(g));
  int64_t packed = 0;
  for (int64_t r = 0; r < g; ++r) {
    sd[size_t(r)] = toInt(packed * row_bytes, what);
    for (int64_t j = 0; j < local; ++j) {
      int64_t n = cnt[r * local + j];
      std::memcpy(wire.data() + packed * row_bytes,
                  src + at[size_t(r * local + j)] * row_bytes,
                  size_t(n * row_bytes));
      packed += n;
    }
    sc[size_t(r)] = toInt(packed * row_bytes, what) - sd[size_t(r)];
    rd[size_t(r)] = toInt(int64_t(off[r * local]) * row_bytes, what);
    rc[size_t(r)] = toInt(
        int64_t(off[(r + 1) * local] - off[r * local]) * row_bytes, what);
  }
  if (off[experts] > out_rows)
    die(std::string(what) + ": the offsets name " +
        std::to_string(off[experts]) + " rows, the output has " +
        std::to_string(out_rows));
  auto *dst = reinterpret_cast<char *>(out);
  check(s.mpi.Alltoallv(wire.data(), sc.data(), sd.data(), s.mpi.byte, dst,
                        rc.data(), rd.data(), s.mpi.byte, comm),
        "MPI_Alltoallv", what);
  std::memset(dst + int64_t(off[experts]) * row_bytes, 0,
              size_t((out_rows - off[experts]) * row_bytes));
}

} // extern "C"
