//===- Cuda.cpp - CUDA driver loaded at run time; the mgpu* host ABI ------===//
//
// Part of moe-compiler's runtime.
//
// The CUDA driver (libcuda.so.1) is opened with dlopen the first time it is
// needed, so that one executable runs on machines without a GPU and the
// runtime builds without the CUDA toolkit. Every failing driver call is
// reported with its name, the CUDA error name and the driver's message.
//
// The mgpu* functions are the host ABI that MLIR's gpu-to-llvm lowering
// emits calls to (gpu.launch_func, gpu.alloc, gpu.memcpy, ...). They return
// nothing, so an error there prints its message and ends the program with a
// non-zero status: a failed launch must never go unnoticed.
//
//===----------------------------------------------------------------------===//

#include "Internal.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <dlfcn.h>
#include <map>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <string>
#include <type_traits>
#include <vector>

namespace {

// The few driver types used here (ABI-stable; no cuda.h needed).
using CUresult = int;
using CUdevice = int;
using CUdeviceptr = unsigned long long;
using CUcontext = struct CUctx_st *;
using CUmodule = struct CUmod_st *;
using CUfunction = struct CUfunc_st *;
using CUstream = struct CUstream_st *;
using CUevent = struct CUevent_st *;
using CUgraph = struct CUgraph_st *;
using CUgraphExec = struct CUgraphExec_st *;

// cuLaunchKernelEx's configuration (cuda.h, CUDA 12+): its launch
// attributes, programmatic stream serialization (Hopper's programmatic
// dependent launch) and the cluster dimension (thread block clusters).
constexpr int kAttrClusterDimension = 4;
constexpr int kAttrProgrammaticStreamSerialization = 6;
struct CUlaunchAttribute {
  int id;
  char pad[8 - sizeof(int)];
  union {
    char bytes[64];
    struct {
      unsigned x, y, z;
    } clusterDim;
    int programmaticStreamSerializationAllowed;
  } value;
};
struct CUlaunchConfig {
  unsigned gridDimX, gridDimY, gridDimZ, blockDimX, blockDimY, blockDimZ;
  unsigned sharedMemBytes;
  CUstream hStream;
  CUlaunchAttribute *attrs;
  unsigned numAttrs;
};

/// Programmatic launch unless the environment sets MOERT_PDL=0.
bool programmaticByDefault() {
  const char *v = std::getenv("MOERT_PDL");
  return !(v && std::string(v) == "0");
}

/// One GPU as this process uses it. A thread drives one GPU (the one it
/// selected, else the default); one process may drive several, one thread
/// each, and none of these fields is shared between threads.
struct Gpu {
  CUcontext context = nullptr;
  CUdevice device = 0;
  // Kernel timing (moert_cuda_profile): events around every launch.
  bool profiling = false;
  CUevent start = nullptr, stop = nullptr;
  double kernelMs = 0.0;
  uint64_t launches = 0;
  // The stream all compiled code runs on: the caller's (moert_cuda_set_stream)
  // or one created on first use.
  CUstream stream = nullptr;
  bool haveStream = false;
  // mgpuStreamSynchronize waits (moert_cuda_set_helper_sync).
  bool helperSync = true;
  // Kernels launch with programmatic stream serialization: each may start
  // while the one before it finishes (the compiler opens every kernel with
  // griddepcontrol.wait). moert_cuda_set_programmatic_launch; MOERT_PDL=0
  // makes it off by default.
  bool programmatic = programmaticByDefault();
  // Dynamic shared memory allowed per kernel so far (set by its first
  // launch, so that launches captured into a graph set nothing).
  std::unordered_map<void *, int> sharedAllowed;
  /// Clusters of a kernel the GPU holds at once (by kernel; one cluster
  /// shape and shared size a kernel).
  std::unordered_map<void *, int> maxClusters;
  // Device scratch of compiled code, cached by size: blocks freed by
  // mgpuMemFree are reused by later allocations on the same stream (stream
  // order makes that safe), so a step allocates nothing from the driver
  // after the first, and a captured CUDA graph sees the same addresses.
  std::multimap<size_t, void *> cached;
  std::unordered_map<void *, size_t> inUse;
  size_t cachedBytes = 0;
  // Tensor maps (moert_cuda_tensor_map_bf16) in device memory, by what they
  // encode: (address, d0, d1, d2, box0, box1). A map is a function of its
  // key alone, so an entry stays right whatever is freed and reallocated.
  std::map<std::array<uint64_t, 6>, CUdeviceptr> tensorMaps;
};

struct Driver {
  void *handle = nullptr;
  CUresult (*cuInit)(unsigned);
  CUresult (*cuDeviceGetCount)(int *);
  CUresult (*cuDeviceGet)(CUdevice *, int);
  CUresult (*cuDeviceGetName)(char *, int, CUdevice);
  CUresult (*cuDevicePrimaryCtxRetain)(CUcontext *, CUdevice);
  CUresult (*cuCtxSetCurrent)(CUcontext);
  CUresult (*cuCtxSynchronize)();
  CUresult (*cuMemGetInfo)(size_t *, size_t *);
  CUresult (*cuMemAlloc)(CUdeviceptr *, size_t);
  CUresult (*cuMemFree)(CUdeviceptr);
  CUresult (*cuMemcpy)(CUdeviceptr, CUdeviceptr, size_t);
  CUresult (*cuMemcpyAsync)(CUdeviceptr, CUdeviceptr, size_t, CUstream);
  CUresult (*cuMemsetD32Async)(CUdeviceptr, unsigned, size_t, CUstream);
  CUresult (*cuModuleLoadData)(CUmodule *, const void *);
  CUresult (*cuModuleUnload)(CUmodule);
  CUresult (*cuModuleGetFunction)(CUfunction *, CUmodule, const char *);
  CUresult (*cuLaunchKernel)(CUfunction, unsigned, unsigned, unsigned,
                             unsigned, unsigned, unsigned, unsigned, CUstream,
                             void **, void **);
  CUresult (*cuFuncSetAttribute)(CUfunction, int, int);
  // Optional (CUDA 12+): without it, kernels launch one after the other.
  CUresult (*cuLaunchKernelEx)(const CUlaunchConfig *, CUfunction, void **,
                               void **) = nullptr;
  CUresult (*cuOccupancyMaxActiveClusters)(int *, CUfunction,
                                           const CUlaunchConfig *) = nullptr;
  CUresult (*cuStreamCreate)(CUstream *, unsigned);
  CUresult (*cuStreamSynchronize)(CUstream);
  CUresult (*cuStreamQuery)(CUstream);
  CUresult (*cuStreamDestroy)(CUstream);
  CUresult (*cuStreamIsCapturing)(CUstream, int *);
  CUresult (*cuEventCreate)(CUevent *, unsigned);
  CUresult (*cuEventRecord)(CUevent, CUstream);
  CUresult (*cuEventSynchronize)(CUevent);
  CUresult (*cuEventElapsedTime)(float *, CUevent, CUevent);
  CUresult (*cuGetErrorName)(CUresult, const char **);
  CUresult (*cuGetErrorString)(CUresult, const char **);
  // Optional (CUDA 12+): without it, no tensor maps (the compiler's TMA
  // kernels cannot run).
  CUresult (*cuTensorMapEncodeTiled)(void *, int, unsigned, void *,
                                     const uint64_t *, const uint64_t *,
                                     const unsigned *, const unsigned *, int,
                                     int, int, int) = nullptr;
  // Optional (CUDA 11.4+): stream capture into CUDA graphs, and page-locked
  // host memory for the inputs a graph's copies read.
  CUresult (*cuStreamBeginCapture)(CUstream, int) = nullptr;
  CUresult (*cuStreamEndCapture)(CUstream, CUgraph *) = nullptr;
  CUresult (*cuGraphInstantiateWithFlags)(CUgraphExec *, CUgraph,
                                          unsigned long long) = nullptr;
  CUresult (*cuGraphLaunch)(CUgraphExec, CUstream) = nullptr;
  CUresult (*cuGraphExecDestroy)(CUgraphExec) = nullptr;
  CUresult (*cuGraphDestroy)(CUgraph) = nullptr;
  CUresult (*cuMemHostAlloc)(void **, size_t, unsigned) = nullptr;
  CUresult (*cuMemFreeHost)(void *) = nullptr;
  moert_status status = MOERT_ERR_DEVICE;
  std::string error; // why the driver is unusable, when it is
  int count = 0;     // GPUs the driver found
  /// The GPU of a thread that did not choose one (moert_cuda_select).
  int defaultOrdinal = 0;
  std::vector<std::unique_ptr<Gpu>> gpus; // by ordinal, opened on first use
  std::mutex mutex;                       // guards opening a Gpu
};

/// Constructed on first use: generated code calls mgpuModuleLoad from a
/// global constructor, possibly before this file's globals are initialized.
/// Never destroyed: generated code unloads its modules from a destructor
/// that runs after the static destructors.
Driver &drv() {
  static auto *d = new Driver;
  return *d;
}

/// Records the failure of `call` with result `r`; returns MOERT_ERR_DEVICE.
moert_status cudaFail(const char *call, CUresult r) {
  const char *name = "unknown", *text = "";
  if (drv().cuGetErrorName)
    drv().cuGetErrorName(r, &name);
  if (drv().cuGetErrorString)
    drv().cuGetErrorString(r, &text);
  return moert::fail(MOERT_ERR_DEVICE, "%s failed: %s (%s)", call, name, text);
}

template <typename F> bool load(F &fn, const char *name) {
  fn = reinterpret_cast<F>(dlsym(drv().handle, name));
  if (!fn)
    drv().error = std::string("libcuda.so.1 has no symbol ") + name;
  return fn != nullptr;
}

void openDriver() {
  drv().handle = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!drv().handle) {
    const char *why = dlerror();
    drv().error = std::string("no CUDA driver on this machine (") +
                   (why ? why : "libcuda.so.1 not found") + ")";
    return;
  }
  bool ok = load(drv().cuInit, "cuInit") &&
            load(drv().cuDeviceGetCount, "cuDeviceGetCount") &&
            load(drv().cuDeviceGet, "cuDeviceGet") &&
            load(drv().cuDeviceGetName, "cuDeviceGetName") &&
            load(drv().cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain") &&
            load(drv().cuCtxSetCurrent, "cuCtxSetCurrent") &&
            load(drv().cuCtxSynchronize, "cuCtxSynchronize") &&
            load(drv().cuMemGetInfo, "cuMemGetInfo_v2") &&
            load(drv().cuMemAlloc, "cuMemAlloc_v2") &&
            load(drv().cuMemFree, "cuMemFree_v2") &&
            load(drv().cuMemcpy, "cuMemcpy") &&
            load(drv().cuMemcpyAsync, "cuMemcpyAsync") &&
            load(drv().cuMemsetD32Async, "cuMemsetD32Async") &&
            load(drv().cuModuleLoadData, "cuModuleLoadData") &&
            load(drv().cuModuleUnload, "cuModuleUnload") &&
            load(drv().cuModuleGetFunction, "cuModuleGetFunction") &&
            load(drv().cuLaunchKernel, "cuLaunchKernel") &&
            load(drv().cuFuncSetAttribute, "cuFuncSetAttribute") &&
            load(drv().cuStreamCreate, "cuStreamCreate") &&
            load(drv().cuStreamSynchronize, "cuStreamSynchronize") &&
            load(drv().cuStreamQuery, "cuStreamQuery") &&
            load(drv().cuStreamDestroy, "cuStreamDestroy_v2") &&
            load(drv().cuStreamIsCapturing, "cuStreamIsCapturing") &&
            load(drv().cuEventCreate, "cuEventCreate") &&
            load(drv().cuEventRecord, "cuEventRecord") &&
            load(drv().cuEventSynchronize, "cuEventSynchronize") &&
            load(drv().cuEventElapsedTime, "cuEventElapsedTime") &&
            load(drv().cuGetErrorName, "cuGetErrorName") &&
            load(drv().cuGetErrorString, "cuGetErrorString");
  if (ok) {
    drv().cuLaunchKernelEx = reinterpret_cast<decltype(drv().cuLaunchKernelEx)>(
        dlsym(drv().handle, "cuLaunchKernelEx"));
    drv().cuOccupancyMaxActiveClusters =
        reinterpret_cast<decltype(drv().cuOccupancyMaxActiveClusters)>(
            dlsym(drv().handle, "cuOccupancyMaxActiveClusters"));
    drv().cuTensorMapEncodeTiled =
        reinterpret_cast<decltype(drv().cuTensorMapEncodeTiled)>(
            dlsym(drv().handle, "cuTensorMapEncodeTiled"));
    auto optional = [](auto &fn, const char *name) {
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(
          dlsym(drv().handle, name));
    };
    optional(drv().cuStreamBeginCapture, "cuStreamBeginCapture_v2");
    optional(drv().cuStreamEndCapture, "cuStreamEndCapture");
    optional(drv().cuGraphInstantiateWithFlags, "cuGraphInstantiateWithFlags");
    optional(drv().cuGraphLaunch, "cuGraphLaunch");
    optional(drv().cuGraphExecDestroy, "cuGraphExecDestroy");
    optional(drv().cuGraphDestroy, "cuGraphDestroy");
    optional(drv().cuMemHostAlloc, "cuMemHostAlloc");
    optional(drv().cuMemFreeHost, "cuMemFreeHost");
  }
  if (!ok)
    return;
  if (CUresult r = drv().cuInit(0)) {
    cudaFail("cuInit", r);
    drv().error = moert_last_error();
    return;
  }
  int count = 0;
  if (CUresult r = drv().cuDeviceGetCount(&count)) {
    cudaFail("cuDeviceGetCount", r);
    drv().error = moert_last_error();
    return;
  }
  if (count == 0) {
    drv().error = "the CUDA driver found no GPU";
    return;
  }
  // A thread that selects no GPU gets MOERT_DEVICE, else the local rank
  // under mpirun (one rank per GPU of the host), else the first.
  drv().count = count;
  drv().gpus.resize(size_t(count));
  if (const char *v = std::getenv("MOERT_DEVICE"); v && *v) {
    int ordinal = std::atoi(v);
    if (ordinal < 0 || ordinal >= count) {
      drv().error = "MOERT_DEVICE=" + std::string(v) + " but the driver found " +
                    std::to_string(count) + " GPU" + (count == 1 ? "" : "s");
      return;
    }
    drv().defaultOrdinal = ordinal;
  } else if (const char *local = std::getenv("OMPI_COMM_WORLD_LOCAL_RANK")) {
    drv().defaultOrdinal = std::atoi(local) % count;
  }
  drv().status = MOERT_OK;
}

/// A module of compiled kernels: generated code registers it once, from a
/// global constructor, and looks its kernels up at each launch. Each GPU
/// gets its own copy, loaded when a thread first makes that GPU current (so
/// neither a timed step nor a graph capture loads modules).
struct Module {
  const void *image;
  std::mutex mutex;
  std::vector<CUmodule> loaded; // by GPU ordinal
};

// Never destroyed: generated code unloads its modules from a destructor
// that runs after the static destructors.
std::mutex &modulesMutex() {
  static auto *m = new std::mutex;
  return *m;
}
std::vector<Module *> &modules() {
  static auto *all = new std::vector<Module *>;
  return *all;
}

/// `m` loaded into GPU `ordinal`, whose context is current.
CUresult loadOn(Module &m, int ordinal, CUmodule &out) {
  std::lock_guard<std::mutex> lock(m.mutex);
  if (m.loaded.size() <= size_t(ordinal))
    m.loaded.resize(size_t(ordinal) + 1);
  CUmodule &slot = m.loaded[size_t(ordinal)];
  CUresult r = 0;
  if (!slot)
    r = drv().cuModuleLoadData(&slot, m.image);
  out = slot;
  return r;
}

/// Opens the driver once per process; whether it is usable.
bool driverOpen() {
  static std::once_flag once;
  std::call_once(once, openDriver);
  return drv().status == MOERT_OK;
}

/// The GPU this thread chose (moert_cuda_select), -1 for the default.
thread_local int selected = -1;
/// This thread's GPU and its ordinal, once ready() succeeded on this thread.
thread_local Gpu *current = nullptr;
thread_local int currentOrdinal = -1;

Gpu &gpu() { return *current; }

/// Makes the driver and this thread's GPU usable on this thread, or records
/// why they are not.
moert_status ready() {
  if (!driverOpen())
    return moert::fail(MOERT_ERR_DEVICE, "%s", drv().error.c_str());
  int ordinal = selected >= 0 ? selected : drv().defaultOrdinal;
  if (current && ordinal == currentOrdinal)
    return MOERT_OK;
  if (ordinal >= drv().count)
    return moert::fail(MOERT_ERR_DEVICE,
                       "GPU %d was asked for, but the driver found %d GPU%s",
                       ordinal, drv().count, drv().count == 1 ? "" : "s");
  Gpu *g;
  bool opened = false;
  {
    std::lock_guard<std::mutex> lock(drv().mutex);
    std::unique_ptr<Gpu> &slot = drv().gpus[size_t(ordinal)];
    if (!slot) {
      auto opening = std::make_unique<Gpu>();
      CUresult r = drv().cuDeviceGet(&opening->device, ordinal);
      if (r)
        return cudaFail("cuDeviceGet", r);
      if ((r = drv().cuDevicePrimaryCtxRetain(&opening->context,
                                              opening->device)))
        return cudaFail("cuDevicePrimaryCtxRetain", r);
      slot = std::move(opening);
      opened = true;
    }
    g = slot.get();
  }
  if (CUresult r = drv().cuCtxSetCurrent(g->context))
    return cudaFail("cuCtxSetCurrent", r);
  current = g;
  currentOrdinal = ordinal;
  if (opened) {
    std::lock_guard<std::mutex> lock(modulesMutex());
    for (Module *m : modules()) {
      CUmodule loaded;
      if (CUresult r = loadOn(*m, ordinal, loaded))
        return cudaFail("cuModuleLoadData", r);
    }
  }
  return MOERT_OK;
}

/// For the mgpu* ABI, which cannot return an error: report and exit.
[[noreturn]] void fatal() {
  std::fprintf(stderr, "error: %s\n", moert_last_error());
  moert::exitAfterError(1);
}

void check(const char *call, CUresult r) {
  if (r) {
    cudaFail(call, r);
    fatal();
  }
}

void ensure() {
  if (ready() != MOERT_OK)
    fatal();
}

} // namespace

//===----------------------------------------------------------------------===//
// moert_cuda_*
//===----------------------------------------------------------------------===//

extern "C" moert_status moert_cuda_init(void) { return ready(); }

extern "C" void moert_cuda_select(int32_t ordinal) {
  selected = ordinal < 0 ? -1 : ordinal;
}

extern "C" moert_status moert_cuda_device_count(int32_t *count) {
  *count = 0;
  if (!driverOpen())
    return moert::fail(MOERT_ERR_DEVICE, "%s", drv().error.c_str());
  *count = drv().count;
  return MOERT_OK;
}

extern "C" moert_status moert_cuda_device_name(char *buffer, size_t size) {
  if (moert_status s = ready(); s != MOERT_OK)
    return s;
  if (CUresult r = drv().cuDeviceGetName(buffer, int(size), gpu().device))
    return cudaFail("cuDeviceGetName", r);
  return MOERT_OK;
}

extern "C" moert_status moert_cuda_alloc(size_t bytes, void **out) {
  *out = nullptr;
  if (moert_status s = ready(); s != MOERT_OK)
    return s;
  CUdeviceptr p = 0;
  if (CUresult r = drv().cuMemAlloc(&p, bytes ? bytes : 1)) {
    size_t freeBytes = 0, total = 0;
    drv().cuMemGetInfo(&freeBytes, &total);
    const char *name = "unknown";
    drv().cuGetErrorName(r, &name);
    return moert::fail(MOERT_ERR_OUT_OF_MEMORY,
                       "cuMemAlloc of %zu bytes failed: %s (%zu of %zu bytes "
                       "of device memory free)",
                       bytes, name, freeBytes, total);
  }
  *out = reinterpret_cast<void *>(p);
  return MOERT_OK;
}

extern "C" moert_status moert_cuda_free(void *ptr) {
  if (!ptr)
    return MOERT_OK;
  if (moert_status s = ready(); s != MOERT_OK)
    return s;
  if (CUresult r = drv().cuMemFree(reinterpret_cast<CUdeviceptr>(ptr)))
    return cudaFail("cuMemFree", r);
  return MOERT_OK;
}

extern "C" moert_status moert_cuda_copy(void *dst, const void *src,
                                        size_t bytes) {
  if (moert_status s = ready(); s != MOERT_OK)
    return s;
  if (CUresult r = drv().cuMemcpy(reinterpret_cast<CUdeviceptr>(dst),
                                   reinterpret_cast<CUdeviceptr>(src), bytes))
    return cudaFail("cuMemcpy", r);
  return MOERT_OK;
}

extern "C" moert_status moert_cuda_profile(int enable) {
  if (moert_status s = ready(); s != MOERT_OK)
    return s;
  if (enable && !gpu().start) {
    if (CUresult r = drv().cuEventCreate(&gpu().start, 0))
      return cudaFail("cuEventCreate", r);
    if (CUresult r = drv().cuEventCreate(&gpu().stop, 0))
      return cudaFail("cuEventCreate", r);
  }
  gpu().profiling = enable != 0;
  gpu().kernelMs = 0.0;
  gpu().launches = 0;
  return MOERT_OK;
}

extern "C" moert_status moert_cuda_profile_read(double *kernel_ms,
                                                uint64_t *launches) {
  *kernel_ms = 0.0;
  *launches = 0;
  if (moert_status s = ready(); s != MOERT_OK)
    return s;
  *kernel_ms = gpu().kernelMs;
  *launches = gpu().launches;
  return MOERT_OK;
}

extern "C" moert_status moert_cuda_set_stream(void *stream) {
  if (moert_status s = ready(); s != MOERT_OK)
    return s;
  gpu().stream = static_cast<CUstream>(stream);
  gpu().haveStream = true;
  return MOERT_OK;
}

namespace {
CUstream modelStream() {
  if (!gpu().haveStream) {
    check("cuStreamCreate",
          drv().cuStreamCreate(&gpu().stream, /*non-blocking*/ 1));
    gpu().haveStream = true;
  }
  return gpu().stream;
}

bool capturing(CUstream s) {
  int status = 0; // CU_STREAM_CAPTURE_STATUS_NONE
  check("cuStreamIsCapturing", drv().cuStreamIsCapturing(s, &status));
  return status != 0;
}
} // namespace

extern "C" moert_status moert_cuda_stream(void **out) {
  *out = nullptr;
  if (moert_status s = ready(); s != MOERT_OK)
    return s;
  *out = modelStream();
  return MOERT_OK;
}

namespace {
/// ready(), and the driver's graph API and page-locked memory (optional
/// symbols) found.
moert_status graphApiReady() {
  if (moert_status s = ready(); s != MOERT_OK)
    return s;
  const Driver &d = drv();
  if (!d.cuStreamBeginCapture || !d.cuStreamEndCapture ||
      !d.cuGraphInstantiateWithFlags || !d.cuGraphLaunch ||
      !d.cuGraphExecDestroy || !d.cuGraphDestroy || !d.cuMemHostAlloc ||
      !d.cuMemFreeHost)
    return moert::fail(MOERT_ERR_UNSUPPORTED, "this CUDA driver has no CUDA "
                                              "graph API (CUDA 11.4 or newer)");
  return MOERT_OK;
}
} // namespace

struct moert_cuda_graph {
  CUgraphExec exec;
};

extern "C" moert_status moert_cuda_host_alloc(size_t bytes, void **out) {
  *out = nullptr;
  if (moert_status s = graphApiReady(); s != MOERT_OK)
    return s;
  if (CUresult r = drv().cuMemHostAlloc(out, std::max<size_t>(bytes, 1), 0))
    return cudaFail("cuMemHostAlloc", r);
  return MOERT_OK;
}

extern "C" moert_status moert_cuda_host_free(void *ptr) {
  if (!ptr)
    return MOERT_OK;
  if (moert_status s = ready(); s != MOERT_OK)
    return s;
  if (CUresult r = drv().cuMemFreeHost(ptr))
    return cudaFail("cuMemFreeHost", r);
  return MOERT_OK;
}

extern "C" moert_status moert_cuda_capture_begin(void) {
  if (moert_status s = graphApiReady(); s != MOERT_OK)
    return s;
  // CU_STREAM_CAPTURE_MODE_THREAD_LOCAL: this thread's unsafe calls fail.
  if (CUresult r = drv().cuStreamBeginCapture(modelStream(), 1))
    return cudaFail("cuStreamBeginCapture", r);
  return MOERT_OK;
}

extern "C" moert_status moert_cuda_capture_end(moert_cuda_graph **out) {
  *out = nullptr;
  if (moert_status s = graphApiReady(); s != MOERT_OK)
    return s;
  CUgraph graph = nullptr;
  if (CUresult r = drv().cuStreamEndCapture(modelStream(), &graph))
    return cudaFail("cuStreamEndCapture", r);
  CUgraphExec exec = nullptr;
  CUresult r = drv().cuGraphInstantiateWithFlags(&exec, graph, 0);
  drv().cuGraphDestroy(graph);
  if (r)
    return cudaFail("cuGraphInstantiateWithFlags", r);
  *out = new moert_cuda_graph{exec};
  return MOERT_OK;
}

extern "C" moert_status moert_cuda_graph_launch(moert_cuda_graph *graph) {
  if (moert_status s = ready(); s != MOERT_OK)
    return s;
  if (!graph)
    return moert::fail(MOERT_ERR_INVALID_ARGUMENT, "moert_cuda_graph_launch: no graph");
  if (CUresult r = drv().cuGraphLaunch(graph->exec, modelStream()))
    return cudaFail("cuGraphLaunch", r);
  return MOERT_OK;
}

extern "C" void moert_cuda_graph_destroy(moert_cuda_graph *graph) {
  if (!graph)
    return;
  if (ready() == MOERT_OK)
    drv().cuGraphExecDestroy(graph->exec);
  delete graph;
}

extern "C" moert_status moert_cuda_trim(void) {
  if (moert_status s = ready(); s != MOERT_OK)
    return s;
  if (CUresult r = drv().cuCtxSynchronize())
    return cudaFail("cuCtxSynchronize", r);
  for (auto &[bytes, p] : gpu().cached)
    if (moert_status s = moert_cuda_free(p); s != MOERT_OK)
      return s;
  gpu().cached.clear();
  gpu().cachedBytes = 0;
  return MOERT_OK;
}

moert_status moert::cudaStreamDone(bool &done) {
  done = false;
  if (moert_status s = ready(); s != MOERT_OK)
    return s;
  CUresult r = drv().cuStreamQuery(modelStream());
  if (r == 600 /* CUDA_ERROR_NOT_READY */)
    return MOERT_OK;
  if (r)
    return cudaFail("cuStreamQuery", r);
  done = true;
  return MOERT_OK;
}

moert_status moert::cudaCopyOnStream(void *dst, const void *src,
                                     size_t bytes) {
  if (moert_status s = ready(); s != MOERT_OK)
    return s;
  if (!bytes)
    return MOERT_OK;
  if (CUresult r = drv().cuMemcpyAsync(reinterpret_cast<CUdeviceptr>(dst),
                                        reinterpret_cast<CUdeviceptr>(src),
                                        bytes, modelStream()))
    return cudaFail("cuMemcpyAsync", r);
  return MOERT_OK;
}

extern "C" moert_status moert_cuda_synchronize(void) {
  if (moert_status s = ready(); s != MOERT_OK)
    return s;
  if (CUresult r = drv().cuCtxSynchronize())
    return cudaFail("cuCtxSynchronize", r);
  return MOERT_OK;
}

//===----------------------------------------------------------------------===//
// mgpu*: the host ABI of MLIR's gpu-to-llvm lowering
//===----------------------------------------------------------------------===//

extern "C" void *mgpuModuleLoad(void *data, size_t /*size*/) {
  // Nothing touches the driver yet: without a GPU, the program's CPU paths
  // still run, and the first launch reports why there is none. A GPU opened
  // already (a module loaded late) gets it at the first launch.
  auto *m = new Module;
  m->image = data;
  std::lock_guard<std::mutex> lock(modulesMutex());
  modules().push_back(m);
  return m;
}

extern "C" void mgpuModuleUnload(void *module) {
  auto *m = static_cast<Module *>(module);
  if (!m)
    return;
  {
    std::lock_guard<std::mutex> lock(modulesMutex());
    std::vector<Module *> &all = modules();
    all.erase(std::remove(all.begin(), all.end(), m), all.end());
  }
  if (drv().status == MOERT_OK)
    for (CUmodule loaded : m->loaded)
      if (loaded)
        drv().cuModuleUnload(loaded);
  delete m;
}

extern "C" void *mgpuModuleGetFunction(void *module, const char *name) {
  ensure();
  auto *m = static_cast<Module *>(module);
  CUmodule loaded;
  check("cuModuleLoadData", loadOn(*m, currentOrdinal, loaded));
  CUfunction fn = nullptr;
  check("cuModuleGetFunction",
        drv().cuModuleGetFunction(&fn, loaded, name));
  return fn;
}

namespace {
/// A launch of `fn` (thread block clusters of cx x cy x cz blocks where cx
/// is not 0: cuLaunchKernelEx, which a cluster needs).
void launch(void *fn, const unsigned cluster[3], intptr_t gx, intptr_t gy,
            intptr_t gz, intptr_t bx, intptr_t by, intptr_t bz, int32_t smem,
            void *stream, void **params, void **extra) {
  ensure();
  CUstream s = static_cast<CUstream>(stream);
  // Where static and dynamic shared memory together pass 48 KB, the dynamic
  // part must be allowed per kernel first
  // (CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES; by default it is 48 KB
  // less the kernel's static part): allowed for every dynamic size, since
  // 48 KB of dynamic memory beside 2 KB of static fails the launch
  // (CUDA_ERROR_INVALID_VALUE) without it.
  if (smem > 0 && gpu().sharedAllowed[fn] < smem) {
    check("cuFuncSetAttribute",
          drv().cuFuncSetAttribute(static_cast<CUfunction>(fn), 8, smem));
    gpu().sharedAllowed[fn] = smem;
  }
  if (gpu().profiling)
    check("cuEventRecord", drv().cuEventRecord(gpu().start, s));
  bool programmatic = gpu().programmatic && drv().cuLaunchKernelEx;
  if (cluster[0] && !drv().cuLaunchKernelEx) {
    moert::fail(MOERT_ERR_DEVICE,
                "a launch in thread block clusters needs cuLaunchKernelEx "
                "(CUDA 12 or later), which this driver lacks");
    fatal();
  }
  if (programmatic || cluster[0]) {
    CUlaunchAttribute attrs[2] = {};
    unsigned n = 0;
    if (programmatic) {
      attrs[n].id = kAttrProgrammaticStreamSerialization;
      attrs[n++].value.programmaticStreamSerializationAllowed = 1;
    }
    if (cluster[0]) {
      attrs[n].id = kAttrClusterDimension;
      attrs[n++].value.clusterDim = {cluster[0], cluster[1], cluster[2]};
    }
    CUlaunchConfig config = {unsigned(gx), unsigned(gy), unsigned(gz),
                             unsigned(bx), unsigned(by), unsigned(bz),
                             unsigned(smem), s, attrs, n};
    // The compiler's cluster kernels (the persistent wgmma kernels, the
    // decoding attention) take their work by gridDim: such a grid is capped
    // at the clusters the GPU holds at once, since a cluster past them would
    // start only as a whole first wave ends (the GPCs' SMs need not all pair
    // up; an H200 holds 66 clusters of two, all its SMs, but only 30 of
    // four).
    if (cluster[0] && drv().cuOccupancyMaxActiveClusters && gy == 1 &&
        gz == 1) {
      auto [it, fresh] = gpu().maxClusters.try_emplace(fn, 0);
      if (fresh)
        check("cuOccupancyMaxActiveClusters",
              drv().cuOccupancyMaxActiveClusters(
                  &it->second, static_cast<CUfunction>(fn), &config));
      unsigned most = unsigned(it->second) * cluster[0];
      if (most && config.gridDimX > most)
        config.gridDimX = most;
    }
    check("cuLaunchKernelEx",
          drv().cuLaunchKernelEx(&config, static_cast<CUfunction>(fn), params,
                                 extra));
  } else {
    check("cuLaunchKernel",
          drv().cuLaunchKernel(static_cast<CUfunction>(fn), unsigned(gx),
                                unsigned(gy), unsigned(gz), unsigned(bx),
                                unsigned(by), unsigned(bz), unsigned(smem), s,
                                params, extra));
  }
  if (gpu().profiling) {
    check("cuEventRecord", drv().cuEventRecord(gpu().stop, s));
    check("cuEventSynchronize", drv().cuEventSynchronize(gpu().stop));
    float ms = 0.0f;
    check("cuEventElapsedTime",
          drv().cuEventElapsedTime(&ms, gpu().start, gpu().stop));
    gpu().kernelMs += ms;
    ++gpu().launches;
  }
}
} // namespace

extern "C" void mgpuLaunchKernel(void *fn, intptr_t gx, intptr_t gy,
                                 intptr_t gz, intptr_t bx, intptr_t by,
                                 intptr_t bz, int32_t smem, void *stream,
                                 void **params, void **extra,
                                 size_t /*paramsCount*/) {
  const unsigned none[3] = {0, 0, 0};
  launch(fn, none, gx, gy, gz, bx, by, bz, smem, stream, params, extra);
}

// gpu.launch_func with `clusters in (...)` (the call MLIR 22's LLVM
// translation emits for it).
extern "C" void mgpuLaunchClusterKernel(void *fn, intptr_t cx, intptr_t cy,
                                        intptr_t cz, intptr_t gx, intptr_t gy,
                                        intptr_t gz, intptr_t bx, intptr_t by,
                                        intptr_t bz, int32_t smem,
                                        void *stream, void **params,
                                        void **extra) {
  const unsigned cluster[3] = {unsigned(cx), unsigned(cy), unsigned(cz)};
  launch(fn, cluster, gx, gy, gz, bx, by, bz, smem, stream, params, extra);
}

// Generated host code creates a stream per function and synchronizes it at
// the end; all of them are the one model stream, so consecutive steps queue
// behind each other without new streams. While the caller captures that
// stream into a CUDA graph, the synchronization is left out (it would end
// the capture); the graph's launch orders the work instead.

extern "C" void *mgpuStreamCreate() {
  ensure();
  return modelStream();
}

extern "C" void mgpuStreamDestroy(void *stream) {
  ensure();
  CUstream s = static_cast<CUstream>(stream);
  if (gpu().haveStream && s == gpu().stream)
    return;
  check("cuStreamDestroy", drv().cuStreamDestroy(s));
}

extern "C" moert_status moert_cuda_set_programmatic_launch(int enabled) {
  if (moert_status s = ready(); s != MOERT_OK)
    return s;
  gpu().programmatic = enabled != 0;
  return MOERT_OK;
}

extern "C" moert_status moert_cuda_set_helper_sync(int enabled) {
  if (moert_status s = ready(); s != MOERT_OK)
    return s;
  gpu().helperSync = enabled != 0;
  return MOERT_OK;
}

extern "C" void mgpuStreamSynchronize(void *stream) {
  ensure();
  CUstream s = static_cast<CUstream>(stream);
  if (!gpu().helperSync || capturing(s))
    return;
  check("cuStreamSynchronize", drv().cuStreamSynchronize(s));
}

extern "C" void *mgpuMemAlloc(uint64_t bytes, void * /*stream*/,
                              bool /*isHostShared*/) {
  ensure();
  // cuMemAlloc refuses 0 bytes; compiled code may ask for an empty buffer
  // (a layer with nothing to clear: the combine by rows beside the gating
  // kernel).
  bytes = std::max<uint64_t>(bytes, 1);
  void *p = nullptr;
  auto hit = gpu().cached.find(bytes);
  if (hit != gpu().cached.end()) {
    p = hit->second;
    gpu().cached.erase(hit);
    gpu().cachedBytes -= bytes;
  } else {
    if (capturing(modelStream())) {
      moert::fail(MOERT_ERR_DEVICE,
                  "compiled code asked for %llu bytes of new device memory "
                  "while its stream is captured into a CUDA graph; run the "
                  "model once before capturing it",
                  (unsigned long long)bytes);
      fatal();
    }
    // Out of memory: give the cached blocks back and try once more.
    if (moert_cuda_alloc(bytes, &p) != MOERT_OK &&
        (!gpu().cachedBytes || moert_cuda_trim() != MOERT_OK ||
         moert_cuda_alloc(bytes, &p) != MOERT_OK))
      fatal();
  }
  gpu().inUse[p] = bytes;
  return p;
}

extern "C" void mgpuMemFree(void *ptr, void * /*stream*/) {
  ensure();
  auto it = gpu().inUse.find(ptr);
  if (it == gpu().inUse.end()) {
    moert::fail(MOERT_ERR_DEVICE, "mgpuMemFree of %p, which mgpuMemAlloc did "
                                  "not return", ptr);
    fatal();
  }
  gpu().cached.emplace(it->second, ptr);
  gpu().cachedBytes += it->second;
  gpu().inUse.erase(it);
}

extern "C" void mgpuMemcpy(void *dst, void *src, size_t bytes, void *stream) {
  ensure();
  // A copy onto itself: a KV cache that the generator passes as both the
  // step's input and its output.
  if (dst == src)
    return;
  check("cuMemcpyAsync",
        drv().cuMemcpyAsync(reinterpret_cast<CUdeviceptr>(dst),
                             reinterpret_cast<CUdeviceptr>(src), bytes,
                             static_cast<CUstream>(stream)));
}

extern "C" void mgpuMemset32(void *dst, unsigned value, size_t count,
                             void *stream) {
  ensure();
  check("cuMemsetD32Async",
        drv().cuMemsetD32Async(reinterpret_cast<CUdeviceptr>(dst), value,
                               count, static_cast<CUstream>(stream)));
}

// A TMA tensor map of a bf16 [d2, d1, d0] tensor (CUtensorMap: 128 bytes,
// 64-byte aligned) read in boxes of [1, box1, box0] with the 128-byte
// swizzle; elements past the tensor read as zeros.
extern "C" uint64_t moert_cuda_tensor_map_bf16(uint64_t base, int64_t d0,
                                               int64_t d1, int64_t d2,
                                               int64_t box0, int64_t box1) {
  ensure();
  std::array<uint64_t, 6> key{base,          uint64_t(d0),   uint64_t(d1),
                              uint64_t(d2),  uint64_t(box0), uint64_t(box1)};
  auto found = gpu().tensorMaps.find(key);
  if (found != gpu().tensorMaps.end())
    return found->second;
  if (capturing(modelStream())) {
    moert::fail(MOERT_ERR_DEVICE,
                "compiled code needs a new tensor map while its stream is "
                "captured into a CUDA graph; run the model once before "
                "capturing it");
    fatal();
  }
  if (!drv().cuTensorMapEncodeTiled) {
    moert::fail(MOERT_ERR_DEVICE, "this CUDA driver has no "
                                  "cuTensorMapEncodeTiled (CUDA 12 or newer "
                                  "is needed for the compiled TMA kernels)");
    fatal();
  }
  alignas(64) uint64_t map[16] = {};
  const uint64_t dims[3] = {uint64_t(d0), uint64_t(d1), uint64_t(d2)};
  const uint64_t strides[2] = {uint64_t(d0) * 2, uint64_t(d0 * d1) * 2};
  const unsigned box[3] = {unsigned(box0), unsigned(box1), 1};
  const unsigned elementStrides[3] = {1, 1, 1};
  // CU_TENSOR_MAP_DATA_TYPE_BFLOAT16 (9), INTERLEAVE_NONE (0),
  // SWIZZLE_128B (3), L2_PROMOTION_L2_256B (3), FLOAT_OOB_FILL_NONE (0).
  if (CUresult r = drv().cuTensorMapEncodeTiled(
          map, 9, 3, reinterpret_cast<void *>(base), dims, strides, box,
          elementStrides, 0, 3, 3, 0)) {
    cudaFail("cuTensorMapEncodeTiled", r);
    std::string why = moert_last_error();
    moert::fail(MOERT_ERR_DEVICE,
                "cuTensorMapEncodeTiled failed for bf16 [%lld, %lld, %lld] at "
                "%#llx, box [%lld, %lld] (%s)",
                (long long)d2, (long long)d1, (long long)d0,
                (unsigned long long)base, (long long)box1, (long long)box0,
                why.c_str());
    fatal();
  }
  void *dev = nullptr;
  if (moert_cuda_alloc(sizeof(map), &dev) != MOERT_OK)
    fatal();
  // Synchronous: the map is in place before any kernel on any stream reads
  // it.
  check("cuMemcpy", drv().cuMemcpy(reinterpret_cast<CUdeviceptr>(dev),
                                   reinterpret_cast<CUdeviceptr>(map),
                                   sizeof(map)));
  gpu().tensorMaps.emplace(key, reinterpret_cast<CUdeviceptr>(dev));
  return reinterpret_cast<CUdeviceptr>(dev);
}
