//===- Comm.cpp - Collectives between the ranks of a partitioned model -----===//
//
// Part of moe-compiler's runtime.
//
// One process per rank, started by mpirun, or one process whose threads are
// the ranks, one GPU each (moert_comm_join_threads; their collectives all go
// over NCCL, and they meet in memory only to share NCCL's unique id and to
// agree). Open MPI is loaded with dlopen
// (RTLD_GLOBAL, which its plug-ins need), so that an executable that is not
// partitioned never depends on it. Open MPI's handles are the addresses of
// its predefined objects (ompi_mpi_comm_world, ompi_mpi_byte, ...), which
// dlsym gives directly; MPICH's integer handles are not supported.
//
// Models compiled for the GPU move their collectives over NCCL (libnccl.so.2,
// also loaded at run time): MPI only broadcasts the NCCL unique id, each
// process drives the GPU of its local rank, and every wait has a deadline
// (MOERT_COMM_TIMEOUT_S, default 300 s) after which the communicator is
// aborted and the error names the collective; NCCL's asynchronous errors are
// polled during the wait. Every blocking step (MPI collectives, NCCL
// start-up, communicator splits) also runs under a watchdog with the same
// deadline, which ends the job with the step's name instead of hanging.
// The compiled code hands most collectives host buffers (routing and the
// exchanges' reorders run on the host), so the NCCL path stages them through
// device memory; fused GPU layers sum their device outputs in place.
//
// Group communicators (one per axes mask) come from MPI_Comm_split (and
// ncclCommSplit) and are cached. The expert exchanges are MPI_Alltoall of the per-expert counts,
// then MPI_Alltoallv of the rows that exist, with a local reorder between
// source-major (the wire) and local-expert-major (the experts) orders.
//
//===----------------------------------------------------------------------===//

#include "Internal.h"

#include <dlfcn.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
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
  int (*Bcast)(void *, int, Handle, int, Handle);
  int (*Abort)(Handle, int);
  int (*Error_string)(int, char *, int *);
  Handle world, byte, floatType, intType, longType, sum, min, max;
};

struct NcclId {
  char internal[128];
};

// ncclResult_t, ncclDataType_t and ncclRedOp_t values from nccl.h.
constexpr int kNcclSuccess = 0, kNcclInProgress = 7;
constexpr int kNcclInt32 = 2, kNcclUint8 = 1, kNcclFloat32 = 7, kNcclSum = 0;

struct Nccl {
  int (*GetUniqueId)(NcclId *);
  int (*CommInitRank)(Handle *, int, NcclId, int);
  int (*CommSplit)(Handle, int, int, Handle *, void *);
  int (*GroupStart)();
  int (*GroupEnd)();
  int (*Send)(const void *, size_t, int, int, Handle, void *);
  int (*Recv)(void *, size_t, int, int, Handle, void *);
  int (*AllReduce)(const void *, void *, size_t, int, int, Handle, void *);
  int (*AllGather)(const void *, void *, size_t, int, Handle, void *);
  const char *(*GetErrorString)(int);
  int (*CommGetAsyncError)(Handle, int *);
  int (*CommAbort)(Handle);
};

struct Group {
  Handle mpi = nullptr;
  Handle nccl = nullptr;
  // Hierarchical all-to-all (a group spread evenly over several hosts, more
  // than one member per host): `intra` holds this host's members, `inter`
  // the members with this one's index on every host.
  std::shared_ptr<Group> intra, inter;
  int hosts = 1, perHost = 1;
};

/// Time and bytes per kind of collective (MOERT_COMM_PROFILE=1).
struct Profile {
  /// The first call is kept apart: it includes one-time set-up (NCCL
  /// connections, staging buffers).
  uint64_t calls = 0, bytes = 0, ns = 0, firstNs = 0;
  bool seen = false;
};

/// The ranks of a partitioned model in one process, one thread each
/// (--gpus N): what they share to start NCCL and to agree. Each collective
/// of theirs runs over NCCL; this is only their meeting point.
struct ThreadWorld {
  int size = 0;
  std::mutex mutex;
  std::condition_variable cv;
  int arrived = 0;
  uint64_t generation = 0;
  std::vector<const void *> posted;

  /// Every rank posts `mine` and waits for the others; then `use` reads
  /// what every rank posted (indexed by rank), and a second meeting keeps
  /// the posted data alive until every rank has read it.
  template <typename F> void meet(int rank, const void *mine, F use) {
    wait(rank, mine);
    use(posted);
    wait(rank, nullptr);
  }

private:
  void wait(int rank, const void *mine) {
    std::unique_lock<std::mutex> lock(mutex);
    posted[size_t(rank)] = mine ? mine : posted[size_t(rank)];
    uint64_t gen = generation;
    if (++arrived == size) {
      arrived = 0;
      ++generation;
      cv.notify_all();
      return;
    }
    cv.wait(lock, [&] { return generation != gen; });
  }
};

std::mutex threadWorldMutex;
ThreadWorld *threadWorld = nullptr; // never freed: threads may still meet

struct State {
  std::map<std::string, Profile> profile;
  Mpi mpi{};
  Nccl nccl{};
  /// `active`: the ranks can talk (MPI started, or the threads of one
  /// process); `threads`: the ranks are threads of this process.
  bool active = false, useNccl = false, threads = false;
  int rank = 0, size = 1;
  double timeoutSeconds = 300.0;
  /// The agreement after loading the weights (MOERT_COMM_LOAD_TIMEOUT_S):
  /// ranks may finish loading a large checkpoint far apart.
  double loadTimeoutSeconds = 3600.0;
  /// Test hook (MOERT_COMM_STALL_RANK): this rank stalls in its first
  /// collective, as a hung peer would.
  int stallRank = -1;
  Handle ncclWorld = nullptr;
  std::vector<int64_t> grid;
  std::map<int64_t, Group> groups;
  /// Device staging of host buffers for NCCL (see Staged).
  void *staging[2] = {nullptr, nullptr};
  size_t stagingBytes[2] = {0, 0};
};

/// Each rank's own state: the process's, under mpirun; its thread's when
/// one process runs every rank.
State &state() {
  thread_local State s;
  return s;
}

/// Ends the process after an error on one rank: MPI_Abort makes mpirun stop
/// every rank; threads of one process end with it.
[[noreturn]] void endJob(const State &s, int status) {
  std::fflush(stdout);
  std::fflush(stderr);
  if (s.active && !s.threads)
    s.mpi.Abort(s.mpi.world, status);
  std::_Exit(status);
}

/// Every blocking communication step (collectives, communicator set-up)
/// runs under a deadline: a watchdog thread ends the job when one has not
/// returned after MOERT_COMM_TIMEOUT_S, naming it, instead of a silent hang
/// (a peer that hangs rather than dies). Each rank thread may hold its own
/// deadlines; the earliest that passes ends the job.
class Watchdog {
public:
  void arm(const void *key, const char *what, double seconds,
           const char *setting, const State &s) {
    std::lock_guard<std::mutex> lock(mutex);
    Entry e;
    e.what = what;
    e.limit = seconds;
    e.setting = setting;
    e.state = &s;
    e.deadline = std::chrono::steady_clock::now() +
                 std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                     std::chrono::duration<double>(seconds));
    entries[key] = e;
    if (!started) {
      started = true;
      std::thread([this] { watch(); }).detach();
    }
  }
  void disarm(const void *key) {
    std::lock_guard<std::mutex> lock(mutex);
    entries.erase(key);
  }

private:
  struct Entry {
    const char *what;
    double limit;
    const char *setting; // the environment variable that sets `limit`
    const State *state;
    std::chrono::steady_clock::time_point deadline;
  };
  void watch() {
    for (;;) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      std::lock_guard<std::mutex> lock(mutex);
      auto now = std::chrono::steady_clock::now();
      for (const auto &[key, e] : entries) {
        if (now < e.deadline)
          continue;
        std::fprintf(stderr,
                     "error: rank %d: %s: timed out after %d s (%s): a peer "
                     "is not answering\n",
                     e.state->rank, e.what, int(e.limit), e.setting);
        endJob(*e.state, 1); // the rank's state lives while it waits
      }
    }
  }
  std::mutex mutex;
  std::map<const void *, Entry> entries;
  bool started = false;
};

Watchdog &watchdog() {
  static Watchdog *w = new Watchdog; // never destroyed: its thread may run
  return *w;
}

/// The deadline of one blocking step. The stall test hook acts in the
/// model's collectives, not in the agreements of its start-up.
struct Deadline {
  /// `seconds`: the step's own limit (set by `setting`), else
  /// MOERT_COMM_TIMEOUT_S.
  explicit Deadline(const char *what, bool startUp = false,
                    double seconds = 0, const char *setting = nullptr) {
    State &s = state();
    if (seconds > 0)
      watchdog().arm(this, what, seconds, setting, s);
    else
      watchdog().arm(this, what, s.timeoutSeconds, "MOERT_COMM_TIMEOUT_S", s);
    if (s.stallRank == s.rank && !startUp) {
      s.stallRank = -1;
      std::this_thread::sleep_for(
          std::chrono::duration<double>(10 * s.timeoutSeconds));
    }
  }
  ~Deadline() { watchdog().disarm(this); }
  Deadline(const Deadline &) = delete;
  Deadline &operator=(const Deadline &) = delete;
};


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
            sym(lib, "MPI_Bcast", m.Bcast) &&
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
  m.min = dlsym(lib, "ompi_mpi_op_min");
  m.max = dlsym(lib, "ompi_mpi_op_max");
  if (!m.world || !m.byte || !m.floatType || !m.intType || !m.longType ||
      !m.sum || !m.min || !m.max) {
    why = "the loaded libmpi is not Open MPI (its predefined handles are "
          "missing); only Open MPI is supported";
    return false;
  }
  return true;
}

/// memcpy / memset that accept empty ranges (whose pointers may be null).
void copyBytes(void *dst, const void *src, size_t n) {
  if (n)
    std::memcpy(dst, src, n);
}
void zeroBytes(void *dst, size_t n) {
  if (n)
    std::memset(dst, 0, n);
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

int toInt(int64_t v, const char *what);

void ncclCheck(int rc, const char *call, const char *what) {
  if (rc == kNcclSuccess)
    return;
  die(std::string(call) + " failed in " + what + ": " +
      state().nccl.GetErrorString(rc));
}

enum class Op { Sum, Min, Max };

/// `value` combined over every rank of the world (MPI, or the threads of
/// this process).
long long worldAllreduce(long long value, Op op, const char *what,
                         bool startUp = false, double seconds = 0,
                         const char *setting = nullptr) {
  State &s = state();
  if (!s.active)
    return value;
  Deadline deadline(what, startUp, seconds, setting);
  long long out = value;
  if (s.threads) {
    threadWorld->meet(s.rank, &value, [&](const std::vector<const void *> &all) {
      out = *static_cast<const long long *>(all[0]);
      for (size_t r = 1; r < all.size(); ++r) {
        long long v = *static_cast<const long long *>(all[r]);
        out = op == Op::Sum ? out + v
              : op == Op::Min ? std::min(out, v)
                              : std::max(out, v);
      }
    });
    return out;
  }
  Handle mpiOp = op == Op::Sum ? s.mpi.sum : op == Op::Min ? s.mpi.min
                                                           : s.mpi.max;
  check(s.mpi.Allreduce(&value, &out, 1, s.mpi.longType, mpiOp, s.mpi.world),
        "MPI_Allreduce", what);
  return out;
}

/// Rank 0's `bytes` at `data` to every rank of the world.
void worldBroadcast(void *data, size_t bytes, const char *what) {
  State &s = state();
  if (s.threads) {
    threadWorld->meet(s.rank, data, [&](const std::vector<const void *> &all) {
      if (s.rank != 0)
        std::memcpy(data, all[0], bytes);
    });
    return;
  }
  check(s.mpi.Bcast(data, int(bytes), s.mpi.byte, 0, s.mpi.world),
        "MPI_Bcast", what);
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

/// The communicator of the ranks that differ only in the axes of `mask`
/// (created on first use); `expectedSize` (when not -1) is the group size
/// the compiled code assumes.
Group &group(int64_t mask, int64_t expectedSize, const char *what) {
  State &s = state();
  int64_t size = 1;
  for (size_t a = 0; a < s.grid.size(); ++a)
    if (mask >> a & 1)
      size *= s.grid[a];
  if (expectedSize >= 0 && size != expectedSize)
    die(std::string(what) + ": the group of axes mask " +
        std::to_string(mask) + " has " + std::to_string(size) +
        " ranks, the compiled code expects " + std::to_string(expectedSize));
  if (!s.active)
    die(std::string(what) + " needs MPI, which was not started");
  if (s.threads && !s.useNccl)
    die(std::string(what) + ": the ranks of one process talk over NCCL only; "
                            "a model compiled for the CPU runs its ranks "
                            "under mpirun (--ranks N)");
  auto found = s.groups.find(mask);
  if (found != s.groups.end())
    return found->second;
  std::vector<int64_t> c = coords(s.rank);
  int color = int(linear(c, mask, false)), key = int(linear(c, mask, true));
  auto split = [&](Handle mpiParent, Handle ncclParent, int splitColor,
                   int splitKey) {
    auto g = std::make_shared<Group>();
    Deadline deadline(what);
    if (!s.threads)
      check(s.mpi.Comm_split(mpiParent, splitColor, splitKey, &g->mpi),
            "MPI_Comm_split", what);
    if (s.useNccl)
      ncclCheck(s.nccl.CommSplit(ncclParent, splitColor, splitKey, &g->nccl,
                                 nullptr),
                "ncclCommSplit", what);
    return g;
  };
  Group g = *split(s.mpi.world, s.ncclWorld, color, key);
  // Hosts: MOERT_RANKS_PER_HOST, else Open MPI's ranks on this node. The
  // group's members (world ranks, in member order) must fill every host
  // evenly and host-major for the hierarchical exchange.
  int perNode = 0;
  if (const char *v = std::getenv("MOERT_RANKS_PER_HOST"); v && *v)
    perNode = std::atoi(v);
  else if (const char *v = std::getenv("OMPI_COMM_WORLD_LOCAL_SIZE"))
    perNode = std::atoi(v);
  int hosts = 0, perHost = 0;
  bool candidate = false;
  if (perNode > 0 && s.size % perNode == 0) {
    std::vector<int> members;
    for (int r = 0; r < s.size; ++r)
      if (linear(coords(r), mask, false) == color)
        members.push_back(r); // world order = member order for one color
    int lastHost = -1, count = 0;
    bool even = true;
    for (int r : members) {
      int h = r / perNode;
      if (h != lastHost) {
        if (lastHost >= 0)
          even &= (perHost == 0 || count == perHost), perHost = count;
        ++hosts, lastHost = h, count = 0;
      }
      ++count;
    }
    even &= perHost == 0 || count == perHost;
    perHost = count;
    candidate = even && hosts > 1 && perHost > 1;
  }
  // Every member takes the same decision (ranks may see different node
  // sizes, e.g. 4 + 2 ranks on two nodes): agree over the world (every
  // rank makes the groups of a mask at the same point of the program).
  long long mine = candidate ? perNode : 0;
  long long low = worldAllreduce(mine, Op::Min, what),
            high = worldAllreduce(mine, Op::Max, what);
  if (low == high && low > 0) {
    g.hosts = hosts;
    g.perHost = perHost;
    g.intra = split(g.mpi, g.nccl, key / perHost, key % perHost);
    g.inter = split(g.mpi, g.nccl, key % perHost, key / perHost);
  }
  return s.groups[mask] = g;
}

/// Waits for the model stream with a deadline, polling NCCL's asynchronous
/// errors; a timeout aborts the communicator and names the collective.
void ncclWait(Handle comm, const char *what) {
  State &s = state();
  uint64_t start = moert_now_ns();
  for (;;) {
    bool done = false;
    if (moert::cudaStreamDone(done) != MOERT_OK)
      die(std::string(what) + ": " + moert_last_error());
    if (done)
      return;
    int async = kNcclSuccess;
    s.nccl.CommGetAsyncError(comm, &async);
    if (async != kNcclSuccess && async != kNcclInProgress)
      die(std::string(what) + ": NCCL reported '" +
          s.nccl.GetErrorString(async) + "'");
    if (double(moert_now_ns() - start) * 1e-9 > s.timeoutSeconds) {
      s.nccl.CommAbort(comm);
      die(std::string(what) + ": timed out after " +
          std::to_string(int(s.timeoutSeconds)) +
          " s (MOERT_COMM_TIMEOUT_S): a peer is not answering");
    }
    std::this_thread::yield();
  }
}

/// Adds the time from construction to destruction to `what`'s profile;
/// the step runs under its deadline.
struct Timed {
  const char *what;
  uint64_t bytes, start = moert_now_ns();
  Deadline deadline{what};
  Timed(const char *what, uint64_t bytes) : what(what), bytes(bytes) {}
  ~Timed() {
    Profile &p = state().profile[what];
    if (!p.seen) {
      p.seen = true;
      p.firstNs = moert_now_ns() - start;
      return;
    }
    p.calls += 1;
    p.bytes += bytes;
    p.ns += moert_now_ns() - start;
  }
};

/// A device copy of host bytes (the staging of the NCCL path), in one of
/// the rank's two staging buffers: kept between calls and grown as needed,
/// so that a step allocates no device memory after its first collectives.
/// The copies are ordered on the model stream, where NCCL runs.
struct Staged {
  void *device = nullptr;
  size_t bytes = 0;
  Staged(int slot, const void *host, size_t n, const char *what) : bytes(n) {
    if (!n)
      return;
    State &s = state();
    void *&buffer = s.staging[slot];
    size_t &capacity = s.stagingBytes[slot];
    if (capacity < n) {
      // The stream may still use the old buffer: let it finish first.
      if (buffer && (moert_cuda_synchronize() != MOERT_OK ||
                     moert_cuda_free(buffer) != MOERT_OK))
        die(std::string(what) + ": " + moert_last_error());
      buffer = nullptr;
      capacity = 0;
      size_t grown = std::max(n, size_t(1) << 20);
      if (moert_cuda_alloc(grown, &buffer) != MOERT_OK)
        die(std::string(what) + ": " + moert_last_error());
      capacity = grown;
    }
    device = buffer;
    if (host && moert::cudaCopyOnStream(device, host, n) != MOERT_OK)
      die(std::string(what) + ": " + moert_last_error());
  }
  void back(void *host, const char *what) const {
    if (bytes && moert::cudaCopyOnStream(host, device, bytes) != MOERT_OK)
      die(std::string(what) + ": " + moert_last_error());
  }
  char *at(size_t offset) const { return static_cast<char *>(device) + offset; }
};

void *modelStream(const char *what) {
  void *stream = nullptr;
  if (moert_cuda_stream(&stream) != MOERT_OK)
    die(std::string(what) + ": " + moert_last_error());
  return stream;
}

void exchangeFlat(Group &g, const void *send, const std::vector<int> &sc,
                  const std::vector<int> &sd, void *recv,
                  const std::vector<int> &rc, const std::vector<int> &rd,
                  const char *what);
void exchangeCounts(Group &g, int64_t members, const int32_t *send, int per,
                    int32_t *recv, const char *what);

/// The hierarchical all-to-all-v of DeepSpeed-MoE: first inside each host
/// (to the local peer with the destination's index, everything for that
/// index on every host), then between hosts (one aggregated message per
/// host instead of one per remote rank). Same result as the flat exchange.
void exchangeHierarchical(Group &g, const char *send,
                          const std::vector<int> &sc,
                          const std::vector<int> &sd, char *recv,
                          const std::vector<int> &rc,
                          const std::vector<int> &rd, const char *what) {
  int H = g.hosts, m = g.perHost;
  // Phase 1: to local peer j, the segments for members h*m + j, h = 0..H-1.
  std::vector<int32_t> cnt1(size_t(m) * size_t(H)), cnt1In(cnt1.size());
  std::vector<int> sc1(static_cast<size_t>(m)), sd1(static_cast<size_t>(m)),
      rc1(static_cast<size_t>(m)), rd1(static_cast<size_t>(m));
  // Sums in 64 bits: a phase aggregates several peers' bytes, which may
  // pass MPI's int limit where no single flat message does.
  int64_t packed = 0;
  for (int j = 0; j < m; ++j) {
    int64_t first = packed;
    for (int h = 0; h < H; ++h) {
      int n = sc[size_t(h * m + j)];
      cnt1[size_t(j * H + h)] = n;
      packed += n;
    }
    sd1[size_t(j)] = toInt(first, what);
    sc1[size_t(j)] = toInt(packed - first, what);
  }
  std::vector<char> buf1(static_cast<size_t>(packed));
  int64_t at = 0;
  for (int j = 0; j < m; ++j)
    for (int h = 0; h < H; ++h) {
      int n = sc[size_t(h * m + j)];
      copyBytes(buf1.data() + at, send + sd[size_t(h * m + j)], size_t(n));
      at += n;
    }
  exchangeCounts(*g.intra, m, cnt1.data(), H, cnt1In.data(), what);
  int64_t got = 0;
  for (int i = 0; i < m; ++i) {
    int64_t first = got;
    for (int h = 0; h < H; ++h)
      got += cnt1In[size_t(i * H + h)];
    rd1[size_t(i)] = toInt(first, what);
    rc1[size_t(i)] = toInt(got - first, what);
  }
  std::vector<char> in1(static_cast<size_t>(got));
  exchangeFlat(*g.intra, buf1.data(), sc1, sd1, in1.data(), rc1, rd1, what);
  // Phase 2: to host h, the segments of every local source for member
  // h*m + (this index), in local source order.
  std::vector<int32_t> cnt2(size_t(H) * size_t(m)), cnt2In(cnt2.size());
  std::vector<int> sc2(static_cast<size_t>(H)), sd2(static_cast<size_t>(H)),
      rc2(static_cast<size_t>(H)), rd2(static_cast<size_t>(H));
  std::vector<char> buf2(static_cast<size_t>(got));
  int64_t at2 = 0;
  for (int h = 0; h < H; ++h) {
    int64_t first = at2;
    for (int i = 0; i < m; ++i) {
      int64_t offset = rd1[size_t(i)];
      for (int hh = 0; hh < h; ++hh)
        offset += cnt1In[size_t(i * H + hh)];
      int n = cnt1In[size_t(i * H + h)];
      cnt2[size_t(h * m + i)] = n;
      copyBytes(buf2.data() + at2, in1.data() + offset, size_t(n));
      at2 += n;
    }
    sd2[size_t(h)] = toInt(first, what);
    sc2[size_t(h)] = toInt(at2 - first, what);
  }
  exchangeCounts(*g.inter, H, cnt2.data(), m, cnt2In.data(), what);
  int64_t got2 = 0;
  for (int h = 0; h < H; ++h) {
    int64_t first = got2;
    for (int i = 0; i < m; ++i) {
      int member = h * m + i;
      if (cnt2In[size_t(h * m + i)] != rc[size_t(member)])
        die(std::string(what) + ": the hierarchical exchange received " +
            std::to_string(cnt2In[size_t(h * m + i)]) + " bytes from member " +
            std::to_string(member) + ", expected " +
            std::to_string(rc[size_t(member)]));
      got2 += rc[size_t(member)];
    }
    rd2[size_t(h)] = toInt(first, what);
    rc2[size_t(h)] = toInt(got2 - first, what);
  }
  std::vector<char> in2(static_cast<size_t>(got2));
  exchangeFlat(*g.inter, buf2.data(), sc2, sd2, in2.data(), rc2, rd2, what);
  at = 0;
  for (int h = 0; h < H; ++h)
    for (int i = 0; i < m; ++i) {
      int member = h * m + i;
      copyBytes(recv + rd[size_t(member)], in2.data() + at,
                  size_t(rc[size_t(member)]));
      at += rc[size_t(member)];
    }
}

/// All-to-all-v of bytes over `g`: counts and displacements per peer.
void exchange(Group &g, const void *send, const std::vector<int> &sc,
              const std::vector<int> &sd, void *recv,
              const std::vector<int> &rc, const std::vector<int> &rd,
              const char *what) {
  if (g.intra) {
    exchangeHierarchical(g, static_cast<const char *>(send), sc, sd,
                         static_cast<char *>(recv), rc, rd, what);
    return;
  }
  exchangeFlat(g, send, sc, sd, recv, rc, rd, what);
}

void exchangeFlat(Group &g, const void *send, const std::vector<int> &sc,
              const std::vector<int> &sd, void *recv,
              const std::vector<int> &rc, const std::vector<int> &rd,
              const char *what) {
  State &s = state();
  if (!s.useNccl) {
    check(s.mpi.Alltoallv(send, sc.data(), sd.data(), s.mpi.byte, recv,
                          rc.data(), rd.data(), s.mpi.byte, g.mpi),
          "MPI_Alltoallv", what);
    return;
  }
  size_t sendBytes = 0, recvBytes = 0;
  for (size_t p = 0; p < sc.size(); ++p) {
    sendBytes = std::max(sendBytes, size_t(sd[p]) + size_t(sc[p]));
    recvBytes = std::max(recvBytes, size_t(rd[p]) + size_t(rc[p]));
  }
  Staged dsend(0, send, sendBytes, what), drecv(1, nullptr, recvBytes, what);
  void *stream = modelStream(what);
  ncclCheck(s.nccl.GroupStart(), "ncclGroupStart", what);
  for (size_t p = 0; p < sc.size(); ++p) {
    if (sc[p])
      ncclCheck(s.nccl.Send(dsend.at(size_t(sd[p])), size_t(sc[p]), kNcclUint8,
                            int(p), g.nccl, stream),
                "ncclSend", what);
    if (rc[p])
      ncclCheck(s.nccl.Recv(drecv.at(size_t(rd[p])), size_t(rc[p]), kNcclUint8,
                            int(p), g.nccl, stream),
                "ncclRecv", what);
  }
  ncclCheck(s.nccl.GroupEnd(), "ncclGroupEnd", what);
  ncclWait(g.nccl, what);
  drecv.back(recv, what);
}

/// Every member sends `per` int32 to every member (the per-expert counts).
void exchangeCounts(Group &g, int64_t members, const int32_t *send, int per,
                    int32_t *recv, const char *what) {
  State &s = state();
  if (!s.useNccl) {
    check(s.mpi.Alltoall(send, per, s.mpi.intType, recv, per, s.mpi.intType,
                         g.mpi),
          "MPI_Alltoall", what);
    return;
  }
  std::vector<int> c(size_t(members), per * 4), d(static_cast<size_t>(members));
  for (int64_t p = 0; p < members; ++p)
    d[size_t(p)] = int(p) * per * 4;
  exchangeFlat(g, send, c, d, recv, c, d, what);
}

int toInt(int64_t v, const char *what) {
  if (v < 0 || v > 0x7fffffff)
    die(std::string(what) + ": a count or offset of " + std::to_string(v) +
        " bytes exceeds the int range of MPI's (and this runtime's) "
        "all-to-all");
  return int(v);
}

} // namespace

void moert::exitAfterError(int status) {
  State &s = state();
  if (s.active)
    endJob(s, status);
  std::fflush(stdout);
  std::exit(status);
}

extern "C" {

namespace {
void readSettings(State &s) {
  if (const char *t = std::getenv("MOERT_COMM_TIMEOUT_S"); t && *t)
    s.timeoutSeconds = std::atof(t) > 0 ? std::atof(t) : s.timeoutSeconds;
  if (const char *t = std::getenv("MOERT_COMM_LOAD_TIMEOUT_S"); t && *t)
    s.loadTimeoutSeconds =
        std::atof(t) > 0 ? std::atof(t) : s.loadTimeoutSeconds;
  if (const char *r = std::getenv("MOERT_COMM_STALL_RANK"); r && *r)
    s.stallRank = std::atoi(r);
}
} // namespace

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
  if (s.threads) {
    if (s.size != ranks)
      return moert::fail(MOERT_ERR_INVALID_ARGUMENT,
                         "this model is partitioned over %lld ranks (grid "
                         "%s) but %d threads were started",
                         (long long)ranks, shape.c_str(), s.size);
    s.active = true;
    readSettings(s);
    return MOERT_OK;
  }
  const char *world = std::getenv("OMPI_COMM_WORLD_SIZE");
  if (!world)
    return moert::fail(MOERT_ERR_UNSUPPORTED,
                       "this model is partitioned over %lld ranks (grid %s) "
                       "and was not started by Open MPI's mpirun "
                       "(OMPI_COMM_WORLD_SIZE is not set); run it with "
                       "'--ranks %lld' or 'mpirun -np %lld <model> ...'",
                       (long long)ranks, shape.c_str(), (long long)ranks,
                       (long long)ranks);
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
  readSettings(s);
  return MOERT_OK;
}

moert_status moert_comm_join_threads(int32_t rank, int32_t size) {
  if (size < 1 || rank < 0 || rank >= size)
    return moert::fail(MOERT_ERR_INVALID_ARGUMENT,
                       "rank %d of %d threads is not a rank", rank, size);
  {
    std::lock_guard<std::mutex> lock(threadWorldMutex);
    if (!threadWorld) {
      threadWorld = new ThreadWorld;
      threadWorld->size = size;
      threadWorld->posted.resize(size_t(size));
    } else if (threadWorld->size != size) {
      return moert::fail(MOERT_ERR_INVALID_ARGUMENT,
                         "the ranks of this process are %d threads, not %d",
                         threadWorld->size, size);
    }
  }
  State &s = state();
  s.threads = true;
  s.rank = rank;
  s.size = size;
  return MOERT_OK;
}

moert_status moert_comm_use_nccl(void) {
  State &s = state();
  if (!s.active || s.useNccl)
    return MOERT_OK;
  // Connect the peers when communicators are made, not in the first
  // collective of a timed step (NCCL 2.22+ connects lazily by default);
  // the user's setting wins.
  // (The threads of one process: their launcher sets it before they start,
  // since setenv would race with the other threads' getenv.)
  if (!s.threads)
    setenv("NCCL_RUNTIME_CONNECT", "0", /*overwrite=*/0);
  void *lib = dlopen("libnccl.so.2", RTLD_NOW | RTLD_GLOBAL);
  if (!lib)
    return moert::fail(MOERT_ERR_UNSUPPORTED,
                       "cannot load NCCL (libnccl.so.2): %s", dlerror());
  Nccl &n = s.nccl;
  bool ok = sym(lib, "ncclGetUniqueId", n.GetUniqueId) &&
            sym(lib, "ncclCommInitRank", n.CommInitRank) &&
            sym(lib, "ncclCommSplit", n.CommSplit) &&
            sym(lib, "ncclGroupStart", n.GroupStart) &&
            sym(lib, "ncclGroupEnd", n.GroupEnd) &&
            sym(lib, "ncclSend", n.Send) && sym(lib, "ncclRecv", n.Recv) &&
            sym(lib, "ncclAllReduce", n.AllReduce) &&
            sym(lib, "ncclAllGather", n.AllGather) &&
            sym(lib, "ncclGetErrorString", n.GetErrorString) &&
            sym(lib, "ncclCommGetAsyncError", n.CommGetAsyncError) &&
            sym(lib, "ncclCommAbort", n.CommAbort);
  if (!ok)
    return moert::fail(MOERT_ERR_UNSUPPORTED,
                       "libnccl.so.2 lacks a function the runtime needs "
                       "(NCCL 2.18 or newer has them all)");
  NcclId id{};
  // NCCL's start-up connects the peers: under the deadline too.
  Deadline deadline("the NCCL start-up", /*startUp=*/true);
  if (s.rank == 0) {
    if (int rc = n.GetUniqueId(&id))
      return moert::fail(MOERT_ERR_DEVICE, "ncclGetUniqueId failed: %s",
                         n.GetErrorString(rc));
  }
  worldBroadcast(&id, sizeof id, "the NCCL start-up");
  if (int rc = n.CommInitRank(&s.ncclWorld, s.size, id, s.rank))
    return moert::fail(MOERT_ERR_DEVICE, "ncclCommInitRank failed: %s",
                       n.GetErrorString(rc));
  s.useNccl = true;
  return MOERT_OK;
}

int moert_comm_uses_nccl(void) { return state().useNccl; }

void moert_comm_profile_print(void) {
  State &s = state();
  for (const auto &[mask, g] : s.groups)
    if (g.intra)
      std::printf("comm rank %d: the group of axes mask %lld exchanges "
                  "hierarchically over %d hosts of %d ranks\n",
                  s.rank, (long long)mask, g.hosts, g.perHost);
  for (const auto &[what, p] : s.profile) {
    if (!p.calls)
      continue;
    double us = double(p.ns) / 1e3 / double(p.calls);
    double bytes = double(p.bytes) / double(p.calls);
    std::printf("comm rank %d %s %s: %llu calls, %.0f bytes sent per call, "
                "%.1f us per call, %.2f GB/s (first call %.1f us, not "
                "counted)\n",
                s.rank, s.useNccl ? "nccl" : "mpi", what.c_str(),
                (unsigned long long)p.calls, bytes, us,
                us > 0 ? bytes / us / 1e3 : 0.0, double(p.firstNs) / 1e3);
  }
}

int32_t moert_comm_world_rank(void) { return state().rank; }
int32_t moert_comm_world_size(void) { return state().size; }

int64_t moert_comm_sum_all(int64_t value) {
  State &s = state();
  return worldAllreduce(value, Op::Sum, "the agreement after loading",
                        /*startUp=*/true, s.loadTimeoutSeconds,
                        "MOERT_COMM_LOAD_TIMEOUT_S");
}

void moert_comm_abort(const char *message, int status) {
  std::fprintf(stderr, "error: rank %d: %s\n", state().rank, message);
  moert::exitAfterError(status);
}

moert_status moert_comm_finalize(void) {
  State &s = state();
  if (!s.active)
    return MOERT_OK;
  s.active = false;
  s.groups.clear();
  for (int slot = 0; slot < 2; ++slot) {
    if (s.staging[slot] && moert_cuda_free(s.staging[slot]) != MOERT_OK)
      return MOERT_ERR_DEVICE;
    s.staging[slot] = nullptr;
    s.stagingBytes[slot] = 0;
  }
  if (s.threads)
    return MOERT_OK;
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

void moert_comm_all_reduce_device(int64_t ptr, int64_t count,
                                  int64_t axes_mask) {
  State &s = state();
  const char *what = "all_reduce (device)";
  int n = toInt(count * 4, what) / 4;
  void *data = reinterpret_cast<void *>(ptr);
  if (!s.useNccl) {
    // Over MPI: through host memory, as the host all-reduce.
    std::vector<float> host(static_cast<size_t>(n));
    if (moert_cuda_synchronize() != MOERT_OK ||
        moert_cuda_copy(host.data(), data, host.size() * 4) != MOERT_OK)
      die(std::string(what) + ": " + moert_last_error());
    int64_t buffer = reinterpret_cast<int64_t>(host.data());
    moert_comm_all_reduce(buffer, buffer, n, MOERT_F32, axes_mask);
    if (moert_cuda_copy(data, host.data(), host.size() * 4) != MOERT_OK ||
        moert_cuda_synchronize() != MOERT_OK)
      die(std::string(what) + ": " + moert_last_error());
    return;
  }
  Group &g = group(axes_mask, /*expectedSize=*/-1, what);
  Timed timed(what, uint64_t(n) * 4);
  ncclCheck(s.nccl.AllReduce(data, data, size_t(n), kNcclFloat32, kNcclSum,
                             g.nccl, modelStream(what)),
            "ncclAllReduce", what);
  ncclWait(g.nccl, what);
}

void moert_comm_all_reduce(int64_t in, int64_t out, int64_t count,
                           int64_t dtype, int64_t axes_mask) {
  State &s = state();
  const char *what = "all_reduce";
  Group &g = group(axes_mask, /*expectedSize=*/-1, what);
  int n = toInt(count * 4, what) / 4;
  auto *src = reinterpret_cast<const void *>(in);
  auto *dst = reinterpret_cast<void *>(out);
  if (dtype != MOERT_F32 && dtype != MOERT_BF16 && dtype != MOERT_F16)
    die("all_reduce: element type " +
        std::string(moert_dtype_name(moert_dtype(dtype))) +
        " is not supported");
  // 16-bit floats are summed in f32 and rounded once.
  Timed timed(what, uint64_t(n) * 4);
  std::vector<float> wide, sum(static_cast<size_t>(n));
  const float *from = static_cast<const float *>(src);
  if (dtype != MOERT_F32) {
    wide.resize(size_t(n));
    moert_convert(src, moert_dtype(dtype), wide.data(), MOERT_F32, size_t(n));
    from = wide.data();
  }
  if (s.useNccl) {
    Staged d(0, from, size_t(n) * 4, what);
    ncclCheck(s.nccl.AllReduce(d.device, d.device, size_t(n), kNcclFloat32,
                               kNcclSum, g.nccl, modelStream(what)),
              "ncclAllReduce", what);
    ncclWait(g.nccl, what);
    d.back(sum.data(), what);
  } else {
    check(s.mpi.Allreduce(from, sum.data(), n, s.mpi.floatType, s.mpi.sum,
                          g.mpi),
          "MPI_Allreduce", what);
  }
  if (dtype == MOERT_F32)
    copyBytes(dst, sum.data(), size_t(n) * 4);
  else
    moert_convert(sum.data(), MOERT_F32, dst, moert_dtype(dtype), size_t(n));
}

void moert_comm_all_gather(int64_t in, int64_t out, int64_t bytes,
                           int64_t group_size, int64_t axes_mask) {
  State &s = state();
  const char *what = "all_gather";
  Group &g = group(axes_mask, group_size, what);
  int n = toInt(bytes * group_size, what) / int(group_size);
  Timed timed(what, uint64_t(n));
  if (s.useNccl) {
    Staged send(0, reinterpret_cast<const void *>(in), size_t(n), what);
    Staged recv(1, nullptr, size_t(n) * size_t(group_size), what);
    ncclCheck(s.nccl.AllGather(send.device, recv.device, size_t(n), kNcclUint8,
                               g.nccl, modelStream(what)),
              "ncclAllGather", what);
    ncclWait(g.nccl, what);
    recv.back(reinterpret_cast<void *>(out), what);
    return;
  }
  check(s.mpi.Allgather(reinterpret_cast<const void *>(in), n, s.mpi.byte,
                        reinterpret_cast<void *>(out), n, s.mpi.byte, g.mpi),
        "MPI_Allgather", what);
}

void moert_comm_dispatch(int64_t in, int64_t offsets, int64_t out,
                         int64_t out_offsets, int64_t counts,
                         int64_t row_bytes, int64_t experts, int64_t capacity,
                         int64_t group_size, int64_t axes_mask) {
  const char *what = "moe.dispatch_exchange";
  Group &comm = group(axes_mask, group_size, what);
  int64_t g = group_size, local = experts / g;
  auto *off = reinterpret_cast<const int32_t *>(offsets);
  auto *recvCounts = reinterpret_cast<int32_t *>(counts); // [g, local]
  std::vector<int32_t> sendCounts(size_t(g * local));
  for (int64_t e = 0; e < experts; ++e)
    sendCounts[size_t(e)] = off[e + 1] - off[e];
  exchangeCounts(comm, g, sendCounts.data(), int(local), recvCounts, what);
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
  {
    Timed t(what, uint64_t(off[experts]) * uint64_t(row_bytes));
    exchange(comm, reinterpret_cast<const void *>(in), sc, sd, wire.data(), rc,
             rd, what);
  }
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
      copyBytes(dst + row * row_bytes,
                  wire.data() + cursor[size_t(r)] * row_bytes,
                  size_t(n * row_bytes));
      cursor[size_t(r)] += n;
      row += n;
    }
  }
  dstOff[local] = int32_t(row);
  zeroBytes(dst + row * row_bytes, size_t((capacity - row) * row_bytes));
}

void moert_comm_combine(int64_t in, int64_t counts, int64_t offsets,
                        int64_t out, int64_t in_rows, int64_t out_rows,
                        int64_t row_bytes, int64_t experts, int64_t group_size,
                        int64_t axes_mask) {
  const char *what = "moe.combine_exchange";
  Group &comm = group(axes_mask, group_size, what);
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
      copyBytes(wire.data() + packed * row_bytes,
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
  {
    Timed t(what, uint64_t(row) * uint64_t(row_bytes));
    exchange(comm, wire.data(), sc, sd, dst, rc, rd, what);
  }
  zeroBytes(dst + int64_t(off[experts]) * row_bytes,
            size_t((out_rows - off[experts]) * row_bytes));
}

} // extern "C"
