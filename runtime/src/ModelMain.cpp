//===- ModelMain.cpp - main() of a compiled model executable ---------------===//
//
// Part of moe-compiler's runtime.
//
// Reads the model's signature, checks every weight and input against it
// (reporting all that are missing or mis-shaped, not just the first), runs
// the model with timing, and writes the outputs atomically.
//
//===----------------------------------------------------------------------===//

#include "Internal.h"

#include <algorithm>
#include <climits>
#include <map>
#include <memory>
#include <random>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

namespace {

/// Rows [r0, r1) of the [rows, cols] matrix `src`, transposed into `dst`
/// ([cols, rows]), in 64 x 64 blocks (both sides stay in cache).
template <typename T>
void transposeRows(const T *src, T *dst, int64_t rows, int64_t cols,
                   int64_t r0, int64_t r1) {
  constexpr int64_t kBlock = 64;
  for (int64_t rb = r0; rb < r1; rb += kBlock)
    for (int64_t cb = 0; cb < cols; cb += kBlock) {
      int64_t re = std::min(rb + kBlock, r1), ce = std::min(cb + kBlock, cols);
      for (int64_t c = cb; c < ce; ++c)
        for (int64_t r = rb; r < re; ++r)
          dst[c * rows + r] = src[r * cols + c];
    }
}

} // namespace

// Over up to 16 threads for large matrices (a Mixtral-8x7B expert matrix
// is 117 MB; copied element by element on one thread, the two layers of
// the benchmark's model took about 40 s to load on the GPU machine).
void moert::transpose(const char *src, char *dst, int64_t rows,
                      int64_t cols, size_t elt) {
  auto part = [&](int64_t r0, int64_t r1) {
    switch (elt) {
    case 1:
      return transposeRows(reinterpret_cast<const uint8_t *>(src),
                           reinterpret_cast<uint8_t *>(dst), rows, cols, r0, r1);
    case 2:
      return transposeRows(reinterpret_cast<const uint16_t *>(src),
                           reinterpret_cast<uint16_t *>(dst), rows, cols, r0,
                           r1);
    case 4:
      return transposeRows(reinterpret_cast<const uint32_t *>(src),
                           reinterpret_cast<uint32_t *>(dst), rows, cols, r0,
                           r1);
    case 8:
      return transposeRows(reinterpret_cast<const uint64_t *>(src),
                           reinterpret_cast<uint64_t *>(dst), rows, cols, r0,
                           r1);
    default:
      for (int64_t r = r0; r < r1; ++r)
        for (int64_t c = 0; c < cols; ++c)
          std::memcpy(dst + size_t(c * rows + r) * elt,
                      src + size_t(r * cols + c) * elt, elt);
    }
  };
  // Row ranges in whole 64-row blocks.
  moert::forRowRanges(rows, rows * cols, int64_t(1) << 22, 64, part);
}

void moert::forRowRanges(int64_t rows, int64_t elements, int64_t minElements,
                         int64_t align,
                         const std::function<void(int64_t, int64_t)> &fn) {
  int64_t threads = std::min<int64_t>(
      16, std::max<int64_t>(1, std::thread::hardware_concurrency()));
  if (elements < minElements || rows < align * threads)
    threads = 1;
  int64_t per = (rows + threads - 1) / threads;
  per = (per + align - 1) / align * align;
  std::vector<std::thread> pool;
  for (int64_t r0 = per; r0 < rows; r0 += per)
    pool.emplace_back(fn, r0, std::min(rows, r0 + per));
  fn(0, std::min(rows, per));
  for (std::thread &t : pool)
    t.join();
}

namespace {

struct Buffer {
  enum Kind { Input, Weight, Output } kind;
  std::string name;
  moert_dtype dtype;
  std::vector<int64_t> shape;
  size_t nbytes = 0;
  void *data = nullptr;
  bool owned = false;
  bool device = false; // on the GPU; data is a device pointer
  void *host = nullptr; // a device output's host copy (owned)
  bool alias = false;   // shares the data of another buffer (not freed)
  bool pinned = false;  // page-locked host memory (moert_cuda_host_alloc)
  std::string layout;   // a Hugging Face layout: "transpose", "stack-transpose"
  std::string quant;    // stored quantized: "fp8:BO:BI" (block-scaled E4M3)
  // Per dimension, the grid axes it is split over (partitioned models).
  std::vector<std::vector<int>> split;
};

std::vector<int64_t> parseDims(const std::string &text) {
  std::vector<int64_t> dims;
  std::istringstream in(text);
  std::string d;
  while (std::getline(in, d, 'x'))
    dims.push_back(std::stoll(d));
  return dims;
}

/// "1|-|2.3" -> {{1}, {}, {2, 3}}.
std::vector<std::vector<int>> parseSplit(const std::string &text) {
  std::vector<std::vector<int>> split;
  std::istringstream dims(text);
  std::string dim;
  while (std::getline(dims, dim, '|')) {
    split.emplace_back();
    if (dim == "-")
      continue;
    std::istringstream axes(dim);
    std::string a;
    while (std::getline(axes, a, '.'))
      split.back().push_back(std::stoi(a));
  }
  return split;
}

bool parseSignature(const char *text, std::vector<Buffer> &out,
                    std::vector<int64_t> &grid, long &decoderStart,
                    bool &capturable) {
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.empty())
      continue;
    std::istringstream fields(line);
    std::string kind, name, dtype, shape, extra, layout, split;
    if (line.rfind("grid ", 0) == 0) {
      fields >> kind >> shape;
      grid = parseDims(shape);
      continue;
    }
    if (line == "capturable-step") {
      capturable = true;
      continue;
    }
    if (line.rfind("decoder-start ", 0) == 0) {
      if (!(fields >> kind >> decoderStart) || decoderStart < 0)
        return false;
      continue;
    }
    if (!(fields >> kind >> name >> dtype >> shape))
      return false;
    // Optional: how the checkpoint stores the weight; a partitioned model's
    // split axes.
    std::string quant;
    while (fields >> extra) {
      if (extra.rfind("split=", 0) == 0)
        split = extra.substr(6);
      else if (extra.rfind("quant=", 0) == 0)
        quant = extra.substr(6);
      else
        layout = extra;
    }
    Buffer b;
    b.split = parseSplit(split);
    // "device-" marks a buffer the compiled code reads or writes on the GPU.
    b.device = kind.rfind("device-", 0) == 0;
    std::string base = b.device ? kind.substr(7) : kind;
    b.kind = base == "input"    ? Buffer::Input
             : base == "weight" ? Buffer::Weight
             : base == "output" ? Buffer::Output
                                : (Buffer::Kind)-1;
    if (int(b.kind) < 0)
      return false;
    b.name = name;
    b.layout = layout;
    b.quant = quant;
    if (moert_dtype_from_name(dtype.c_str(), &b.dtype) != MOERT_OK)
      return false;
    if (shape != "scalar")
      b.shape = parseDims(shape);
    if (!b.split.empty() && b.split.size() != b.shape.size())
      return false;
    size_t n = 1;
    for (int64_t d : b.shape)
      n *= size_t(d);
    b.nbytes = n * moert_dtype_size(b.dtype);
    out.push_back(std::move(b));
  }
  return true;
}

std::string shapeString(const std::vector<int64_t> &shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i)
    s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

void usage(const char *argv0, const std::vector<Buffer> &buffers) {
  std::fprintf(stderr,
               "usage: %s --weights W.safetensors|CKPT_DIR --input "
               "X.safetensors --output Y.safetensors [--repeat N] "
               "[--warmup N] [--gpus N | --ranks N]\n"
               "   or (a whole model): %s --weights CKPT_DIR --prompt-ids "
               "1,2,3 [--max-new-tokens N] [--temperature T] [--top-p P] "
               "[--seed S] [--output LOGITS_AND_IDS.safetensors]\n",
               argv0, argv0);
  std::fprintf(stderr, "model buffers:\n");
  for (const Buffer &b : buffers)
    std::fprintf(stderr, "  %-6s %-24s %-4s %s%s%s%s\n",
                 b.kind == Buffer::Input    ? "input"
                 : b.kind == Buffer::Weight ? "weight"
                                            : "output",
                 b.name.c_str(), moert_dtype_name(b.dtype),
                 shapeString(b.shape).c_str(), b.device ? " (on the GPU)" : "",
                 b.quant.empty() ? "" : ", stored ",
                 b.quant.empty() ? "" : b.quant.c_str());
}

double checksum(const Buffer &b) {
  size_t n = b.nbytes / moert_dtype_size(b.dtype);
  double sum = 0.0;
  for (size_t i = 0; i < n; ++i) {
    switch (b.dtype) {
    case MOERT_F32:
      sum += static_cast<const float *>(b.data)[i];
      break;
    case MOERT_F16:
      sum += moert_f16_to_f32(static_cast<const uint16_t *>(b.data)[i]);
      break;
    case MOERT_BF16:
      sum += moert_bf16_to_f32(static_cast<const uint16_t *>(b.data)[i]);
      break;
    case MOERT_I32:
      sum += static_cast<const int32_t *>(b.data)[i];
      break;
    default:
      break;
    }
  }
  return sum;
}

/// This rank's slice of a weight split over grid axes: `whole` holds the
/// checkpoint tensor, `b.shape` is the slice; copied into an owned buffer.
bool loadSlice(Buffer &b, const moert_st_tensor &whole,
               const std::vector<int64_t> &grid) {
  int32_t rank = moert_comm_world_rank();
  std::vector<int64_t> coord(grid.size());
  for (size_t i = grid.size(), r = size_t(rank); i-- > 0;) {
    coord[i] = int64_t(r) % grid[i];
    r /= size_t(grid[i]);
  }
  size_t n = b.shape.size(), elt = moert_dtype_size(b.dtype);
  std::vector<int64_t> first(n), full(n);
  for (size_t d = 0; d < n; ++d) {
    int64_t part = 0, parts = 1;
    for (int a : b.split[d]) {
      part = part * grid[size_t(a)] + coord[size_t(a)];
      parts *= grid[size_t(a)];
    }
    full[d] = b.shape[d] * parts;
    first[d] = part * b.shape[d];
  }
  if (moert_alloc(b.nbytes, &b.data) != MOERT_OK)
    return false;
  b.owned = true;
  if (n == 0) {
    std::memcpy(b.data, whole.data, b.nbytes);
    return true;
  }
  // Rows of the last dimension are contiguous in both tensors.
  size_t rowBytes = size_t(b.shape[n - 1]) * elt;
  std::vector<int64_t> at(n, 0);
  char *dst = static_cast<char *>(b.data);
  for (size_t done = 0; done < b.nbytes; done += rowBytes) {
    int64_t offset = 0;
    for (size_t d = 0; d < n; ++d)
      offset = offset * full[d] + first[d] + at[d];
    std::memcpy(dst + done,
                static_cast<const char *>(whole.data) + size_t(offset) * elt,
                rowBytes);
    for (size_t d = n - 1; d-- > 0;) {
      if (++at[d] < b.shape[d])
        break;
      at[d] = 0;
    }
  }
  return true;
}

/// The weights: one safetensors file, or every *.safetensors file of a
/// directory (a Hugging Face checkpoint and its shards).
struct WeightFiles {
  std::string path;
  bool directory = false;
  std::vector<moert_st_file *> files;

  ~WeightFiles() {
    for (moert_st_file *f : files)
      moert_st_close(f);
  }

  bool open(const char *where) {
    path = where;
    struct stat st;
    std::vector<std::string> names;
    if (stat(where, &st) == 0 && S_ISDIR(st.st_mode)) {
      directory = true;
      if (DIR *d = opendir(where)) {
        while (dirent *e = readdir(d)) {
          std::string n = e->d_name;
          if (n.size() > 12 && n.compare(n.size() - 12, 12, ".safetensors") == 0)
            names.push_back(path + "/" + n);
        }
        closedir(d);
      }
      std::sort(names.begin(), names.end());
      if (names.empty()) {
        moert::fail(MOERT_ERR_NOT_FOUND,
                    "the directory '%s' holds no .safetensors file", where);
        return false;
      }
    } else {
      names.push_back(path);
    }
    for (const std::string &n : names) {
      moert_st_file *f = nullptr;
      if (moert_st_open(n.c_str(), &f) != MOERT_OK)
        return false;
      files.push_back(f);
    }
    return true;
  }

  /// The file holding `name`, or null with the message of a missing tensor.
  moert_st_file *holding(const std::string &name) const {
    moert_st_tensor t;
    for (moert_st_file *f : files)
      if (moert_st_find(f, name.c_str(), &t) == MOERT_OK)
        return f;
    if (!directory)
      return files.front(); // moert_st_expect names the file and the tensor
    moert::fail(MOERT_ERR_NOT_FOUND,
                "tensor '%s' is in none of the %zu safetensors files of '%s'",
                name.c_str(), files.size(), path.c_str());
    return nullptr;
  }

  bool expect(const std::string &name, moert_dtype dtype,
              const std::vector<int64_t> &shape, moert_st_tensor &out) const {
    moert_st_file *f = holding(name);
    return f && moert_st_expect(f, name.c_str(), dtype, int32_t(shape.size()),
                                shape.data(), &out) == MOERT_OK;
  }
};

/// Block-scaled FP8 ("fp8:BO:BI", the checkpoints of DeepSeek-V3 and the
/// Qwen3 FP8 models): an F8_E4M3 [out, in] tensor and beside it
/// `<name>_scale_inv` (F32 [ceil(out / BO), ceil(in / BI)]), element (o, i)
/// being e4m3(w[o, i]) * scale[o / BO, i / BI], rounded once to `dtype`.
struct Fp8Blocks {
  int64_t out = 0, in = 0;
  bool parse(const std::string &quant) {
    char tail = 0;
    long bo = 0, bi = 0;
    if (std::sscanf(quant.c_str(), "fp8:%ld:%ld%c", &bo, &bi, &tail) != 2 ||
        bo < 1 || bi < 1)
      return false;
    out = bo, in = bi;
    return true;
  }
};

/// The [rows, cols] tensor `name` of weight `b` in b.dtype: the stored
/// tensor itself, or where b.quant says it is quantized, dequantized into
/// `scratch` (a moert_alloc buffer the caller frees, allocated by the first
/// call: every tensor read into it has this shape).
bool readStored(const WeightFiles &files, const Buffer &b,
                const std::string &name, int64_t rows, int64_t cols,
                const void *&data, void *&scratch) {
  moert_st_tensor t;
  if (b.quant.empty()) {
    if (!files.expect(name, b.dtype, {rows, cols}, t))
      return false;
    data = t.data;
    return true;
  }
  Fp8Blocks blocks;
  if (!blocks.parse(b.quant)) {
    moert::fail(MOERT_ERR_UNSUPPORTED,
                "weight '%s': the quantization '%s' is not supported "
                "(supported: fp8:BO:BI)",
                b.name.c_str(), b.quant.c_str());
    return false;
  }
  std::string scaleName = name + "_scale_inv";
  int64_t srows = (rows + blocks.out - 1) / blocks.out,
          scols = (cols + blocks.in - 1) / blocks.in;
  moert_st_tensor scale;
  if (!files.expect(name, MOERT_F8_E4M3, {rows, cols}, t) ||
      !files.expect(scaleName, MOERT_F32, {srows, scols}, scale))
    return false;
  if (!scratch && moert_alloc(size_t(rows * cols) * moert_dtype_size(b.dtype),
                              &scratch) != MOERT_OK)
    return false;
  const uint8_t *w = static_cast<const uint8_t *>(t.data);
  // Safetensors does not align tensors: the scales are copied out.
  const char *s = static_cast<const char *>(scale.data);
  // Rows over up to 16 threads (an expert matrix of Qwen3-30B-A3B-FP8 is
  // 1.5 M elements; DeepSeek-V3's 14.7 M).
  size_t elt = moert_dtype_size(b.dtype);
  float lut[256]; // every E4M3 byte's value
  for (int v = 0; v < 256; ++v)
    lut[v] = moert_f8e4m3_to_f32(uint8_t(v));
  auto part = [&](int64_t r0, int64_t r1) {
    std::vector<float> row(static_cast<size_t>(cols)),
        srow(static_cast<size_t>(scols));
    for (int64_t r = r0; r < r1; ++r) {
      std::memcpy(srow.data(), s + size_t((r / blocks.out) * scols) * 4,
                  size_t(scols) * 4);
      for (int64_t c = 0; c < cols; ++c)
        row[size_t(c)] = lut[w[r * cols + c]] * srow[size_t(c / blocks.in)];
      // F32, F16 or BF16 (moe-compile checks that the weight is a float).
      (void)moert_convert(row.data(), MOERT_F32,
                          static_cast<char *>(scratch) + size_t(r * cols) * elt,
                          b.dtype, size_t(cols));
    }
  };
  moert::forRowRanges(rows, rows * cols, int64_t(1) << 20, 1, part);
  data = scratch;
  return true;
}

/// A weight stored in a Hugging Face layout, materialized as the model uses
/// it (`shape`) in a moert_alloc buffer: "transpose" (a Linear [out, in]
/// used as [in, out]), "stack-transpose" (one [out, in] tensor per expert,
/// `*` in the name standing for the expert index, used as [E, in, out]) or
/// "qkv-transpose:H:i" (below).
bool materialize(const WeightFiles &files, const Buffer &b,
                 const std::vector<int64_t> &shape, moert_st_tensor &out) {
  size_t elt = moert_dtype_size(b.dtype), n = 1;
  for (int64_t d : shape)
    n *= size_t(d);
  // "qkv-transpose:H:i": part i (q, k, v) of Megatron's fused
  // query_key_value [H * 3 * R, in] (per head: q, k, v rows), used as
  // [in, H * R].
  if (b.layout.rfind("qkv-transpose:", 0) == 0) {
    if (!b.quant.empty()) {
      moert::fail(MOERT_ERR_UNSUPPORTED,
                  "weight '%s': the layout '%s' is not supported quantized",
                  b.name.c_str(), b.layout.c_str());
      return false;
    }
    long heads = 0, part = -1;
    char tail = 0;
    if (std::sscanf(b.layout.c_str() + 14, "%ld:%ld%c", &heads, &part,
                    &tail) != 2 ||
        heads < 1 || part < 0 || part > 2 || shape.size() != 2 ||
        shape[1] % heads != 0) {
      moert::fail(MOERT_ERR_UNSUPPORTED,
                  "weight '%s': the layout '%s' does not fit its shape",
                  b.name.c_str(), b.layout.c_str());
      return false;
    }
    int64_t in = shape[0], rows = shape[1] / heads;
    moert_st_tensor t;
    if (!files.expect(b.name, b.dtype, {3 * shape[1], in}, t))
      return false;
    // This part's rows of every head, in order ([H * R, in]), transposed.
    void *rowsOfPart = nullptr, *data = nullptr;
    if (moert_alloc(n * elt, &rowsOfPart) != MOERT_OK)
      return false;
    if (moert_alloc(n * elt, &data) != MOERT_OK) {
      moert_free(rowsOfPart);
      return false;
    }
    size_t block = size_t(rows * in) * elt;
    for (int64_t h = 0; h < heads; ++h)
      std::memcpy(static_cast<char *>(rowsOfPart) + size_t(h) * block,
                  static_cast<const char *>(t.data) +
                      size_t(h * 3 + part) * block,
                  block);
    moert::transpose(static_cast<const char *>(rowsOfPart),
                     static_cast<char *>(data), shape[1], in, elt);
    moert_free(rowsOfPart);
    out.data = data;
    out.nbytes = n * elt;
    return true;
  }
  if (b.layout.empty()) { // quantized, stored as the model uses it
    void *data = nullptr;
    const void *stored = nullptr;
    if (shape.size() != 2) {
      moert::fail(MOERT_ERR_UNSUPPORTED,
                  "weight '%s': a quantized weight must be a matrix, got "
                  "rank %zu",
                  b.name.c_str(), shape.size());
      return false;
    }
    if (!readStored(files, b, b.name, shape[0], shape[1], stored, data)) {
      moert_free(data);
      return false;
    }
    out.data = data;
    out.nbytes = n * elt;
    return true;
  }
  bool stack = b.layout == "stack-transpose";
  if (!(b.layout == "transpose" && shape.size() == 2) &&
      !(stack && shape.size() == 3)) {
    moert::fail(MOERT_ERR_UNSUPPORTED,
                "weight '%s': the layout '%s' of a rank-%zu tensor is not "
                "supported",
                b.name.c_str(), b.layout.c_str(), shape.size());
    return false;
  }
  void *data = nullptr;
  if (moert_alloc(n * elt, &data) != MOERT_OK)
    return false;
  int64_t experts = stack ? shape[0] : 1;
  int64_t rows = shape[shape.size() - 2], cols = shape[shape.size() - 1];
  size_t star = b.name.find('*');
  if (stack && star == std::string::npos) {
    moert_free(data);
    moert::fail(MOERT_ERR_FORMAT,
                "weight '%s' is stacked but its name has no '*' for the "
                "expert index",
                b.name.c_str());
    return false;
  }
  void *scratch = nullptr; // a dequantized expert, where quantized
  for (int64_t e = 0; e < experts; ++e) {
    std::string name =
        stack ? b.name.substr(0, star) + std::to_string(e) +
                    b.name.substr(star + 1)
              : b.name;
    const void *stored = nullptr;
    if (!readStored(files, b, name, cols, rows, stored, scratch)) {
      moert_free(scratch);
      moert_free(data);
      return false;
    }
    moert::transpose(static_cast<const char *>(stored),
                     static_cast<char *>(data) + size_t(e * rows * cols) * elt,
                     cols, rows, elt);
  }
  moert_free(scratch);
  out.data = data;
  out.nbytes = n * elt;
  return true;
}

struct Options;
int parseOptions(int argc, char **argv, const std::vector<Buffer> &buffers,
                 Options &o);
int runModel(const Options &o, std::vector<Buffer> &buffers,
             const std::vector<int64_t> &grid, void (*run)(void **buffers),
             bool &agreed);
int runRank(const Options &options, std::vector<Buffer> &buffers,
            const std::vector<int64_t> &grid, void (*run)(void **buffers));
int runThreads(int n, bool onDevice, const Options &options,
               const std::vector<Buffer> &buffers,
               const std::vector<int64_t> &grid, void (*run)(void **buffers));

/// A whole model compiled from a checkpoint (--import-hf-whole) is one
/// decoding step: inputs `ids` [T] and `pos` [1] (I32) and the KV caches
/// `past_key.N` / `past_value.N`, outputs `logits` [T, V] and the caches
/// `key.N` / `value.N`. The executable then generates tokens. A step of
/// several rows per sequence may take `logit_rows` [B] (I32: the row of
/// each sequence whose logits it computes); its logits are then [B, V].
/// An encoder-decoder (T5, Switch Transformers) also takes the prompt as
/// `encoder_ids` [S] (padded) with `encoder_length` [1], and decodes from
/// the signature's decoder start token; its step runs the encoder when the
/// position is 0 and passes the encoder's keys and values on as caches
/// (`past_cross_key.N` / `cross_key.N`).
struct Generator {
  Buffer *ids = nullptr, *pos = nullptr, *logits = nullptr,
         *logitRows = nullptr, *encoderIds = nullptr,
         *encoderLength = nullptr;
  long decoderStart = -1;
  std::vector<std::pair<Buffer *, Buffer *>> caches; // (past input, output)
  /// A step only queues GPU work (the signature's "capturable-step") and
  /// this run may replay it as a CUDA graph (one rank; MOERT_CUDA_GRAPH is
  /// not 0).
  bool graph = false;
};

bool findGenerator(std::vector<Buffer> &buffers, long decoderStart,
                   Generator &g) {
  g.decoderStart = decoderStart;
  std::map<std::string, Buffer *> byName;
  for (Buffer &b : buffers)
    byName[b.name] = &b;
  auto in = [&](const std::string &n) -> Buffer * {
    auto it = byName.find(n);
    return it != byName.end() && it->second->kind == Buffer::Input
               ? it->second
               : nullptr;
  };
  auto out = [&](const std::string &n) -> Buffer * {
    auto it = byName.find(n);
    return it != byName.end() && it->second->kind == Buffer::Output
               ? it->second
               : nullptr;
  };
  g.ids = in("ids");
  g.pos = in("pos");
  g.logits = out("logits");
  g.logitRows = in("logit_rows");
  g.encoderIds = in("encoder_ids");
  g.encoderLength = in("encoder_length");
  if (bool(g.encoderIds) != bool(g.encoderLength))
    return false;
  if (bool(g.encoderIds) != (decoderStart >= 0))
    return false;
  if (g.encoderIds &&
      (g.encoderIds->dtype != MOERT_I32 || g.encoderIds->shape.size() != 1 ||
       g.encoderLength->dtype != MOERT_I32 ||
       g.encoderLength->shape != std::vector<int64_t>{1}))
    return false;
  // B sequences of T rows: ids [B*T], pos [B], logits [B*T, V] (or [B, V]
  // with logit_rows [B]).
  if (!g.ids || !g.pos || !g.logits || g.ids->dtype != MOERT_I32 ||
      g.pos->dtype != MOERT_I32 || g.ids->shape.size() != 1 ||
      g.pos->shape.size() != 1 || g.pos->shape[0] < 1 ||
      g.ids->shape[0] % g.pos->shape[0] != 0 || g.logits->shape.size() != 2)
    return false;
  if (g.logitRows ? g.logitRows->dtype != MOERT_I32 ||
                        g.logitRows->shape != g.pos->shape ||
                        g.logits->shape[0] != g.pos->shape[0]
                  : g.logits->shape[0] != g.ids->shape[0])
    return false;
  for (Buffer &b : buffers) {
    if (b.kind != Buffer::Input || b.name.rfind("past_", 0) != 0)
      continue;
    Buffer *o = out(b.name.substr(5));
    if (!o || o->nbytes != b.nbytes || b.shape.empty() ||
        b.shape[0] % g.pos->shape[0] != 0)
      return false;
    g.caches.push_back({&b, o});
  }
  for (Buffer &b : buffers)
    if (b.kind == Buffer::Input && &b != g.ids && &b != g.pos &&
        &b != g.logitRows && &b != g.encoderIds && &b != g.encoderLength &&
        b.name.rfind("past_", 0) != 0)
      return false;
  return true;
}

float logitAt(const Buffer &b, size_t i) {
  switch (b.dtype) {
  case MOERT_F32:
    return static_cast<const float *>(b.data)[i];
  case MOERT_BF16:
    return moert_bf16_to_f32(static_cast<const uint16_t *>(b.data)[i]);
  default:
    return moert_f16_to_f32(static_cast<const uint16_t *>(b.data)[i]);
  }
}

/// Greedy (temperature 0) or temperature / top-p sampling of one token.
int32_t sample(const Buffer &logits, size_t row, int64_t vocab,
               double temperature, double topP, std::mt19937_64 &rng) {
  size_t base = row * size_t(vocab);
  if (temperature <= 0.0) {
    int32_t best = 0;
    for (int64_t v = 1; v < vocab; ++v)
      if (logitAt(logits, base + size_t(v)) > logitAt(logits, base + size_t(best)))
        best = int32_t(v);
    return best;
  }
  std::vector<std::pair<double, int32_t>> p(static_cast<size_t>(vocab));
  double m = -1e300;
  for (int64_t v = 0; v < vocab; ++v)
    m = std::max(m, double(logitAt(logits, base + size_t(v))) / temperature);
  double sum = 0.0;
  for (int64_t v = 0; v < vocab; ++v) {
    double e = std::exp(double(logitAt(logits, base + size_t(v))) / temperature - m);
    p[size_t(v)] = {e, int32_t(v)};
    sum += e;
  }
  std::sort(p.begin(), p.end(), [](auto &a, auto &b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  });
  // The smallest set of most likely tokens whose mass reaches top-p.
  double kept = 0.0;
  size_t n = 0;
  while (n < p.size() && (n == 0 || kept < topP * sum))
    kept += p[n++].first;
  double r = std::uniform_real_distribution<double>(0.0, kept)(rng);
  for (size_t i = 0; i < n; ++i) {
    if (r < p[i].first)
      return p[i].second;
    r -= p[i].first;
  }
  return p[n - 1].second;
}

struct GenerateOptions {
  std::vector<int32_t> prompt;
  long maxNew = 16;
  double temperature = 0.0, topP = 1.0;
  uint64_t seed = 0;
};

/// The command line, read once before any rank starts.
struct Options {
  const char *weightsPath = nullptr, *inputPath = nullptr,
             *outputPath = nullptr;
  long repeat = 10, warmup = 1;
  GenerateOptions gen;
  bool generating = false;
  /// From the signature: a whole model that generates tokens; which files
  /// it reads.
  bool isGenerator = false, needWeights = false, needInputs = false;
  /// The signature's decoder start token (an encoder-decoder), else -1.
  long decoderStart = -1;
  /// The signature's "capturable-step".
  bool capturable = false;
};

/// Sets a buffer (on the host or the GPU) to zero.
bool clearBuffer(Buffer &b) {
  if (!b.device) {
    std::memset(b.data, 0, b.nbytes);
    return true;
  }
  std::vector<unsigned char> zeros(b.nbytes, 0);
  return moert_cuda_copy(b.data, zeros.data(), b.nbytes) == MOERT_OK;
}

/// Runs the prompt in steps of T tokens (the last padded with id 0: its
/// padding rows write cache rows that later steps overwrite, and no real
/// token attends to them), then one token per step, sampling from the
/// last real row's logits. A model compiled for B sequences
/// (--import-hf-batch) runs the prompt as B sequences side by side, each
/// with its own KV cache and its own draws (sequence b's random stream is
/// seeded with seed + b). Prints the generated ids and the timing, and
/// writes `outputPath`, on the leader only (every rank of a partitioned
/// model holds the same logits and draws the same tokens).
/// The prompt's ids against the vocabulary, and the prompt, the new tokens
/// and the last step's padding against the KV cache: checked before any
/// weight is loaded. Returns 0, or 2 after printing what is wrong.
int checkGeneration(const Generator &g, const GenerateOptions &o) {
  int64_t B = g.pos->shape[0], vocab = g.logits->shape[1];
  for (int32_t id : o.prompt)
    if (id < 0 || id >= vocab) {
      std::fprintf(stderr, "error: prompt id %d is outside the vocabulary "
                           "[0, %lld)\n", id, (long long)vocab);
      return 2;
    }
  if (g.encoderIds) {
    // An encoder-decoder: the prompt in the encoder's rows, the decoder's
    // steps from its start token.
    int64_t rows = g.encoderIds->shape[0];
    if (int64_t(o.prompt.size()) > rows) {
      std::fprintf(stderr, "error: the prompt's %zu tokens exceed the "
                           "encoder's %lld rows (moe-compile "
                           "--import-hf-max-seq)\n",
                   o.prompt.size(), (long long)rows);
      return 2;
    }
    Generator decoderOnly = g;
    decoderOnly.encoderIds = nullptr;
    GenerateOptions dec = o;
    dec.prompt = {int32_t(g.decoderStart)};
    return checkGeneration(decoderOnly, dec);
  }
  int64_t T = g.ids->shape[0] / B;
  int64_t maxSeq =
      g.caches.empty() ? INT64_MAX : g.caches.front().first->shape[0] / B;
  // The cache rows the steps write: the prompt's steps (the last padded to
  // T rows), then one step per new token but the last, each writing T rows
  // from its position (P + i for the i-th).
  int64_t P = int64_t(o.prompt.size());
  int64_t total = P + o.maxNew;
  int64_t needed = (P + T - 1) / T * T;
  if (o.maxNew > 1)
    needed = std::max<int64_t>(needed, P + o.maxNew - 2 + T);
  if (needed > maxSeq) {
    std::fprintf(stderr, "error: %zu prompt tokens + %ld new tokens (+ %lld "
                         "of step padding) exceed the KV cache of %lld rows "
                         "(moe-compile --import-hf-max-seq)\n",
                 o.prompt.size(), o.maxNew,
                 (long long)std::max<int64_t>(0, needed - total),
                 (long long)maxSeq);
    return 2;
  }
  return 0;
}

int generate(Generator &g, std::vector<void *> &args,
             std::vector<Buffer> &buffers, const GenerateOptions &o,
             void (*run)(void **buffers), const char *outputPath,
             bool leader) {
  int64_t B = g.pos->shape[0], vocab = g.logits->shape[1];
  int64_t T = g.ids->shape[0] / B;
  if (int rc = checkGeneration(g, o))
    return rc;
  // An encoder-decoder reads the prompt in its encoder; its decoder's own
  // prompt is the start token.
  GenerateOptions dec = o;
  if (g.encoderIds) {
    dec.prompt = {int32_t(g.decoderStart)};
    auto *enc = static_cast<int32_t *>(g.encoderIds->data);
    std::fill(enc, enc + g.encoderIds->shape[0], 0);
    std::copy(o.prompt.begin(), o.prompt.end(), enc);
    *static_cast<int32_t *>(g.encoderLength->data) = int32_t(o.prompt.size());
  }
  auto slot = [&](Buffer *b) {
    return size_t(b - buffers.data());
  };
  auto clearCaches = [&] {
    for (auto &[past, out] : g.caches)
      if (!clearBuffer(*past)) {
        std::fprintf(stderr, "error: clearing the KV cache '%s': %s\n",
                     past->name.c_str(), moert_last_error());
        return false;
      }
    return true;
  };
  if (!clearCaches())
    return 1;
  std::vector<std::mt19937_64> rngs;
  for (int64_t b = 0; b < B; ++b)
    rngs.emplace_back(o.seed + uint64_t(b));
  // Per sequence: its tokens so far and the ones it generated.
  std::vector<std::vector<int32_t>> tokens(static_cast<size_t>(B), dec.prompt);
  std::vector<std::vector<int32_t>> generated(static_cast<size_t>(B));
  int32_t *ids = static_cast<int32_t *>(g.ids->data);
  int32_t *pos = static_cast<int32_t *>(g.pos->data);
  // A model on the GPU waits for its stream once per step rather than after
  // every GPU helper; logits kept on the GPU come back one row per sequence
  // (the row a token is drawn from).
  bool onDevice = std::any_of(buffers.begin(), buffers.end(),
                              [](const Buffer &b) { return b.device; });
  if (onDevice && moert_cuda_set_helper_sync(0) != MOERT_OK) {
    std::fprintf(stderr, "error: %s\n", moert_last_error());
    return 1;
  }
  Buffer logitsHost = *g.logits;
  if (g.logits->device) {
    logitsHost.data = g.logits->host;
    logitsHost.device = false;
  }
  // Rows of logits per sequence: T, or 1 (logit_rows picks each one's).
  int64_t L = g.logitRows ? 1 : T;
  auto logitRow = [&](int64_t b, size_t last) {
    return L == 1 ? size_t(b) : size_t(b * T) + last;
  };
  int32_t *logitRows =
      g.logitRows ? static_cast<int32_t *>(g.logitRows->data) : nullptr;
  auto pickRows = [&](size_t last) {
    for (int64_t b = 0; logitRows && b < B; ++b)
      logitRows[b] = int32_t(size_t(b * T) + last);
  };
  size_t rowBytes = g.logits->nbytes / size_t(B * L);
  bool failed = false;
  auto finishStep = [&](size_t row) {
    if (failed)
      return;
    moert_status st = onDevice ? moert_cuda_synchronize() : MOERT_OK;
    // One copy per sequence; one for all when a step has one row of logits
    // per sequence (the rows are then adjacent).
    int64_t copies = L == 1 ? 1 : B;
    size_t bytes = L == 1 ? size_t(B) * rowBytes : rowBytes;
    for (int64_t b = 0; b < copies && st == MOERT_OK && g.logits->device; ++b) {
      size_t at = logitRow(b, row) * rowBytes;
      st = moert_cuda_copy(static_cast<char *>(g.logits->host) + at,
                           static_cast<char *>(g.logits->data) + at, bytes);
    }
    if (st != MOERT_OK) {
      std::fprintf(stderr, "error: a generation step on the GPU: %s\n",
                   moert_last_error());
      failed = true;
    }
  };
  // One untimed step of token 0 at position 0 first: one-time costs (CUDA
  // module loading, NCCL connections, first touch of buffers) stay out of
  // the prefill time. The cache rows it writes are cleared again.
  std::fill(ids, ids + B * T, 0);
  std::fill(pos, pos + B, 0);
  pickRows(0);
  run(args.data());
  finishStep(0);
  if (failed)
    return 1;
  // A step that only queues GPU work runs as one CUDA graph, captured now
  // that the warm-up step has made its scratch memory and tensor maps (the
  // capture runs nothing): a launch a step instead of one a kernel. Every
  // step passes the same buffers (the caches are read and written in
  // place); its copies of ids, pos and logit_rows read the page-locked
  // host buffers when the graph runs.
  std::unique_ptr<moert_cuda_graph, void (*)(moert_cuda_graph *)> graph(
      nullptr, moert_cuda_graph_destroy);
  std::vector<void *> graphArgs;
  if (g.graph && onDevice) {
    moert_cuda_graph *made = nullptr;
    if (moert_cuda_capture_begin() == MOERT_OK) {
      run(args.data());
      if (moert_cuda_capture_end(&made) == MOERT_OK) {
        graph.reset(made);
        graphArgs = args;
      }
    }
    if (!graph)
      std::fprintf(stderr, "note: %s; the steps run without a CUDA graph\n",
                   moert_last_error());
  }
  if (!clearCaches())
    return 1;
  // One step over tokens[at, at + n) of every sequence: returns the last
  // row's index within a sequence, whose logits are then on the host.
  auto step = [&](size_t at, size_t n) {
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t i = 0; i < T; ++i)
        ids[b * T + i] = size_t(i) < n ? tokens[size_t(b)][at + size_t(i)] : 0;
      pos[b] = int32_t(at);
    }
    pickRows(n - 1);
    if (graph && args == graphArgs) {
      if (moert_cuda_graph_launch(graph.get()) != MOERT_OK) {
        std::fprintf(stderr, "error: a generation step's CUDA graph: %s\n",
                     moert_last_error());
        failed = true;
      }
    } else {
      run(args.data());
    }
    finishStep(n - 1);
    // The caches just written feed the next step.
    for (auto &[past, out] : g.caches)
      std::swap(args[slot(past)], args[slot(out)]);
    return n - 1;
  };
  auto draw = [&](size_t last) {
    for (int64_t b = 0; b < B; ++b) {
      int32_t next = sample(logitsHost, logitRow(b, last), vocab,
                            o.temperature, o.topP, rngs[size_t(b)]);
      generated[size_t(b)].push_back(next);
      tokens[size_t(b)].push_back(next);
    }
  };
  // The logits each token was drawn from, for --output: per sequence.
  std::vector<std::vector<float>> drawn(static_cast<size_t>(B));
  auto keepLogits = [&](size_t last) {
    for (int64_t b = 0; b < B; ++b)
      for (int64_t v = 0; v < vocab; ++v)
        drawn[size_t(b)].push_back(logitAt(
            logitsHost, logitRow(b, last) * size_t(vocab) + size_t(v)));
  };
  uint64_t t0 = moert_now_ns();
  size_t last = 0;
  for (size_t at = 0; at < dec.prompt.size(); at += size_t(T))
    last = step(at, std::min(size_t(T), dec.prompt.size() - at));
  uint64_t t1 = moert_now_ns();
  // Decode time: each step with the sampling of its tokens.
  uint64_t decodeNs = 0;
  keepLogits(last);
  draw(last);
  for (long i = 1; i < o.maxNew && !failed; ++i) {
    uint64_t s = moert_now_ns();
    last = step(tokens[0].size() - 1, 1);
    if (failed)
      break;
    keepLogits(last);
    draw(last);
    decodeNs += moert_now_ns() - s;
  }
  if (onDevice)
    moert_cuda_set_helper_sync(1);
  if (failed)
    return 1;
  if (!leader)
    return 0;
  double prefillMs = double(t1 - t0) / 1e6;
  if (B > 1)
    std::printf("batch: %lld sequences\n", (long long)B);
  std::printf("prompt: %zu tokens, prefill %.2f ms (%.1f tokens/s)\n",
              o.prompt.size() * size_t(B), prefillMs,
              double(o.prompt.size() * size_t(B)) / (prefillMs / 1e3));
  for (int64_t b = 0; b < B; ++b) {
    if (b == 0)
      std::printf("generated:");
    else
      std::printf("generated[%lld]:", (long long)b);
    const std::vector<int32_t> &gen = generated[size_t(b)];
    for (size_t i = 0; i < gen.size(); ++i)
      std::printf("%s%d", i ? "," : " ", gen[i]);
    std::printf("\n");
  }
  if (o.maxNew > 1)
    std::printf("decode: %ld steps, %.2f ms (%.1f tokens/s)\n", o.maxNew - 1,
                double(decodeNs) / 1e6,
                double(B * (o.maxNew - 1)) / (double(decodeNs) / 1e9));
  if (onDevice)
    std::printf("steps: %s\n", graph ? "one CUDA graph each"
                                       : "kernels launched one by one");
  if (!outputPath)
    return 0;
  // The logits of every generated token (the row it was drawn from, in
  // f32) and the ids, sequence after sequence.
  std::vector<float> allLogits;
  std::vector<int32_t> allIds;
  for (int64_t b = 0; b < B; ++b) {
    allLogits.insert(allLogits.end(), drawn[size_t(b)].begin(),
                     drawn[size_t(b)].end());
    allIds.insert(allIds.end(), generated[size_t(b)].begin(),
                  generated[size_t(b)].end());
  }
  moert_st_tensor outs[2] = {};
  outs[0].name = "logits";
  outs[0].dtype = MOERT_F32;
  outs[0].rank = 2;
  outs[0].shape[0] = int64_t(allIds.size());
  outs[0].shape[1] = vocab;
  outs[0].data = allLogits.data();
  outs[0].nbytes = allLogits.size() * sizeof(float);
  outs[1].name = "ids";
  outs[1].dtype = MOERT_I32;
  outs[1].rank = 1;
  outs[1].shape[0] = int64_t(allIds.size());
  outs[1].data = allIds.data();
  outs[1].nbytes = allIds.size() * sizeof(int32_t);
  if (moert_st_write(outputPath, 2, outs) != MOERT_OK) {
    std::fprintf(stderr, "error: %s\n", moert_last_error());
    return 1;
  }
  return 0;
}

} // namespace

extern "C" int moert_model_main(int argc, char **argv, const char *signature,
                                void (*run)(void **buffers)) {
  std::vector<Buffer> buffers;
  std::vector<int64_t> grid;
  long decoderStart = -1;
  bool capturable = false;
  if (!parseSignature(signature, buffers, grid, decoderStart, capturable)) {
    std::fprintf(stderr, "error: the model's embedded signature is malformed\n");
    return 1;
  }
  for (int i = 1; i < argc; ++i)
    if (!std::strcmp(argv[i], "--help") || !std::strcmp(argv[i], "-h")) {
      usage(argv[0], buffers);
      return 0;
    }
  int64_t ranks = 1;
  for (int64_t d : grid)
    ranks *= d;
  bool onDevice = false;
  for (const Buffer &b : buffers)
    onDevice |= b.device;
  // --gpus N: one process drives the N GPUs of a partitioned GPU model, one
  // thread per rank. --ranks N: the model launches itself under mpirun, one
  // process per rank (and per GPU).
  int launcher = 0;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--gpus") && std::strcmp(argv[i], "--ranks"))
      continue;
    const char *v = i + 1 < argc ? argv[i + 1] : "";
    char *end = nullptr;
    long n = std::strtol(v, &end, 10);
    if (!*v || *end || n < 1) {
      std::fprintf(stderr, "error: %s needs a count, got '%s'\n", argv[i], v);
      return 2;
    }
    if (n != ranks) {
      std::fprintf(stderr,
                   "error: %s %ld: this model was compiled for %lld rank%s "
                   "(moe-compile --ranks)\n",
                   argv[i], n, (long long)ranks, ranks == 1 ? "" : "s");
      return 2;
    }
    if (ranks == 1 || std::getenv("OMPI_COMM_WORLD_SIZE"))
      break; // nothing to launch, or launched already
    launcher = i;
    break;
  }
  Options options;
  options.decoderStart = decoderStart;
  options.capturable = capturable;
  if (int rc = parseOptions(argc, argv, buffers, options); rc >= 0)
    return rc;
  if (launcher > 0 && !std::strcmp(argv[launcher], "--gpus"))
    return runThreads(int(ranks), onDevice, options, buffers, grid, run);
  if (launcher > 0) {
    int i = launcher;
    std::vector<std::string> words = {"mpirun", "-np", std::to_string(ranks)};
    if (geteuid() == 0)
      words.push_back("--allow-run-as-root");
    // Open MPI counts slots by cores; the ranks asked for run regardless.
    words.push_back("--oversubscribe");
    for (int j = 0; j < argc; ++j)
      if (j != i && j != i + 1)
        words.push_back(argv[j]);
    std::vector<char *> launch;
    for (std::string &w : words)
      launch.push_back(w.data());
    launch.push_back(nullptr);
    std::fflush(stdout);
    execvp("mpirun", launch.data());
    std::fprintf(stderr, "error: %s %lld needs Open MPI's mpirun on PATH: %s\n",
                 argv[i], (long long)ranks, std::strerror(errno));
    return 1;
  }
  // One rank of a partitioned model per process (mpirun), or the only one.
  return runRank(options, buffers, grid, run);
}

namespace {
/// One rank: starts its communication, runs the model, and makes a failure
/// stop every rank rather than leave them waiting (unless they all agreed
/// to stop before running).
int runRank(const Options &options, std::vector<Buffer> &buffers,
            const std::vector<int64_t> &grid, void (*run)(void **buffers)) {
  if (moert_comm_init(grid.data(), int32_t(grid.size())) != MOERT_OK) {
    std::fprintf(stderr, "error: %s\n", moert_last_error());
    return 1;
  }
  bool agreed = false;
  int rc = runModel(options, buffers, grid, run, agreed);
  if (rc != 0 && !agreed && moert_comm_world_size() > 1)
    moert_comm_abort("stopping all ranks", rc);
  if (moert_comm_finalize() != MOERT_OK) {
    std::fprintf(stderr, "error: %s\n", moert_last_error());
    return 1;
  }
  return rc;
}

/// The N ranks of a GPU model as threads of this process, rank r on GPU r;
/// their collectives go over NCCL, which needs no MPI in one process.
int runThreads(int n, bool onDevice, const Options &options,
               const std::vector<Buffer> &buffers,
               const std::vector<int64_t> &grid, void (*run)(void **buffers)) {
  if (!onDevice) {
    std::fprintf(stderr,
                 "error: --gpus %d runs the ranks on GPUs, but this model was "
                 "compiled for the CPU; run its ranks with --ranks %d "
                 "(mpirun)\n",
                 n, n);
    return 2;
  }
  int32_t count = 0;
  if (moert_cuda_device_count(&count) != MOERT_OK) {
    std::fprintf(stderr, "error: --gpus %d: %s\n", n, moert_last_error());
    return 1;
  }
  if (count < n) {
    std::fprintf(stderr, "error: --gpus %d, but the CUDA driver found %d "
                         "GPU%s\n",
                 n, count, count == 1 ? "" : "s");
    return 1;
  }
  // Before any thread starts (setenv races with getenv): NCCL connects its
  // peers when the communicators are made, not in a timed step; the user's
  // setting wins.
  setenv("NCCL_RUNTIME_CONNECT", "0", /*overwrite=*/0);
  std::vector<int> status(static_cast<size_t>(n), 0);
  std::vector<std::thread> threads;
  for (int r = 0; r < n; ++r)
    threads.emplace_back([&, r] {
      moert_cuda_select(r);
      if (moert_comm_join_threads(r, n) != MOERT_OK) {
        std::fprintf(stderr, "error: %s\n", moert_last_error());
        status[size_t(r)] = 1;
        return;
      }
      std::vector<Buffer> mine = buffers; // each rank its own buffers
      status[size_t(r)] = runRank(options, mine, grid, run);
    });
  for (std::thread &t : threads)
    t.join();
  return *std::max_element(status.begin(), status.end());
}

int parseOptions(int argc, char **argv, const std::vector<Buffer> &buffers,
                 Options &o) {
  const char *&weightsPath = o.weightsPath, *&inputPath = o.inputPath,
             *&outputPath = o.outputPath;
  long &repeat = o.repeat, &warmup = o.warmup;
  GenerateOptions &gen = o.gen;
  bool &generating = o.generating;
  bool bad = false;
  for (int i = 1; i < argc && !bad; ++i) {
    std::string a = argv[i];
    // A missing or malformed value sets `bad` (checked after each option).
    auto value = [&]() -> const char * {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "error: %s needs a value\n", a.c_str());
        bad = true;
        return "";
      }
      return argv[++i];
    };
    auto count = [&](long &out) {
      const char *v = value();
      if (bad)
        return;
      char *end = nullptr;
      out = std::strtol(v, &end, 10);
      if (!*v || *end || out < 0 || out > 1000000) {
        std::fprintf(stderr, "error: %s needs a count in [0, 1000000], got "
                             "'%s'\n",
                     a.c_str(), v);
        bad = true;
      }
    };
    if (a == "--weights")
      weightsPath = value();
    else if (a == "--input")
      inputPath = value();
    else if (a == "--output")
      outputPath = value();
    else if (a == "--repeat")
      count(repeat);
    else if (a == "--warmup")
      count(warmup);
    else if (a == "--gpus" || a == "--ranks")
      value(); // checked (and launched) before
    else if (a == "--prompt-ids") {
      generating = true;
      const char *ids = value();
      if (bad)
        return 2;
      std::istringstream list(ids);
      std::string item;
      while (std::getline(list, item, ',')) {
        char *end = nullptr;
        long id = std::strtol(item.c_str(), &end, 10);
        if (item.empty() || *end || id < INT32_MIN || id > INT32_MAX) {
          std::fprintf(stderr, "error: --prompt-ids needs comma-separated "
                               "token ids, got '%s'\n",
                       item.c_str());
          return 2;
        }
        gen.prompt.push_back(int32_t(id));
      }
      if (gen.prompt.empty()) {
        std::fprintf(stderr, "error: --prompt-ids needs at least one id\n");
        return 2;
      }
    } else if (a == "--max-new-tokens")
      count(gen.maxNew);
    else if (a == "--temperature" || a == "--top-p") {
      const char *v = value();
      if (bad)
        return 2;
      char *end = nullptr;
      double d = std::strtod(v, &end);
      bool temp = a == "--temperature";
      if (!*v || *end || !(d >= 0.0) || (!temp && (d <= 0.0 || d > 1.0))) {
        std::fprintf(stderr, "error: %s needs a number %s, got '%s'\n",
                     a.c_str(), temp ? ">= 0" : "in (0, 1]", v);
        return 2;
      }
      (temp ? gen.temperature : gen.topP) = d;
    } else if (a == "--seed") {
      long s = 0;
      count(s);
      gen.seed = uint64_t(s);
    }
    else if (a == "--help" || a == "-h") {
      usage(argv[0], buffers);
      return 0;
    } else {
      std::fprintf(stderr, "error: unknown argument '%s'\n", a.c_str());
      usage(argv[0], buffers);
      return 2;
    }
  }
  if (bad)
    return 2;
  Generator generator;
  std::vector<Buffer> probe = buffers;
  bool isGenerator = findGenerator(probe, o.decoderStart, generator);
  if (isGenerator != generating) {
    std::fprintf(stderr,
                 isGenerator
                     ? "error: this model generates tokens: give --prompt-ids "
                       "(and --max-new-tokens)\n"
                     : "error: --prompt-ids needs a whole model (moe-compile "
                       "--import-hf-whole); this one maps inputs to outputs\n");
    return 2;
  }
  // Before any weight loads (a large model takes a while to load).
  if (isGenerator)
    if (int rc = checkGeneration(generator, o.gen))
      return rc;
  bool &needWeights = o.needWeights, &needInputs = o.needInputs;
  o.isGenerator = isGenerator;
  for (const Buffer &b : buffers) {
    needWeights |= b.kind == Buffer::Weight;
    needInputs |= b.kind == Buffer::Input && !isGenerator;
  }
  if ((needWeights && !weightsPath) || (needInputs && !inputPath) ||
      (!outputPath && !isGenerator)) {
    std::fprintf(stderr, "error: missing %s\n",
                 !outputPath                  ? "--output"
                 : needWeights && !weightsPath ? "--weights"
                                               : "--input");
    usage(argv[0], buffers);
    return 2;
  }
  if (repeat < 1)
    repeat = 1;
  return -1;
}

int runModel(const Options &o, std::vector<Buffer> &buffers,
             const std::vector<int64_t> &grid, void (*run)(void **buffers),
             bool &agreed) {
  bool leader = moert_comm_world_rank() == 0;
  const char *weightsPath = o.weightsPath, *inputPath = o.inputPath,
             *outputPath = o.outputPath;
  long repeat = o.repeat, warmup = o.warmup;
  const GenerateOptions &gen = o.gen;
  bool isGenerator = o.isGenerator, needWeights = o.needWeights,
       needInputs = o.needInputs;
  // The generation loop's view of this rank's own buffers.
  Generator generator;
  if (isGenerator)
    findGenerator(buffers, o.decoderStart, generator);
  // One CUDA graph a step: where the compiled step only queues GPU work, on
  // one rank (a partitioned step's collectives are not captured), unless
  // MOERT_CUDA_GRAPH=0.
  const char *graphEnv = std::getenv("MOERT_CUDA_GRAPH");
  generator.graph = isGenerator && o.capturable && grid.empty() &&
                    !(graphEnv && std::string(graphEnv) == "0");

  moert_st_file *inputs = nullptr;
  WeightFiles weights;
  if (needWeights) {
    if (leader)
      std::fprintf(stderr, "loading weights from %s\n", weightsPath);
    if (!weights.open(weightsPath)) {
      std::fprintf(stderr, "error: %s\n", moert_last_error());
      return 1;
    }
  }
  if (needInputs && moert_st_open(inputPath, &inputs) != MOERT_OK) {
    std::fprintf(stderr, "error: %s\n", moert_last_error());
    return 1;
  }

  // A model compiled for the GPU needs one: say so once, before any work.
  size_t onDevice = 0;
  for (const Buffer &b : buffers)
    onDevice += b.device;
  if (onDevice && moert_cuda_init() != MOERT_OK) {
    std::fprintf(stderr,
                 "error: this model was compiled for the GPU (%zu of its "
                 "buffers live there) and cannot run here: %s\n",
                 onDevice, moert_last_error());
    moert_st_close(inputs);
    return 1;
  }

  // The collectives of a GPU model go over NCCL (MOERT_COMM=mpi keeps MPI).
  const char *commChoice = std::getenv("MOERT_COMM");
  if (onDevice && moert_comm_world_size() > 1 &&
      !(commChoice && std::string(commChoice) == "mpi") &&
      moert_comm_use_nccl() != MOERT_OK) {
    std::fprintf(stderr, "error: %s\n", moert_last_error());
    moert_st_close(inputs);
    return 1;
  }

  // Check everything first and report every problem.
  int problems = 0;
  for (Buffer &b : buffers) {
    if (b.kind == Buffer::Output)
      continue;
    if (isGenerator && b.kind == Buffer::Input) {
      // Token ids, position and KV caches: the generation loop fills them.
      // Caches the compiled code keeps on the GPU are allocated there; the
      // host inputs of a step replayed as a CUDA graph are page-locked (the
      // graph's copies read them when it runs).
      b.pinned = !b.device && generator.graph;
      if (b.pinned && moert_cuda_host_alloc(b.nbytes, &b.data) != MOERT_OK) {
        std::fprintf(stderr, "note: %s; the steps run without a CUDA graph\n",
                     moert_last_error());
        b.pinned = generator.graph = false;
      }
      moert_status made = b.device   ? moert_cuda_alloc(b.nbytes, &b.data)
                          : b.pinned ? MOERT_OK
                                     : moert_alloc(b.nbytes, &b.data);
      if (made != MOERT_OK || !clearBuffer(b)) {
        std::fprintf(stderr, "error: %s '%s': %s\n",
                     b.device ? "KV cache on the GPU" : "buffer",
                     b.name.c_str(), moert_last_error());
        ++problems;
        continue;
      }
      b.owned = !b.device && !b.pinned;
      continue;
    }
    moert_st_tensor t;
    bool sliced = false;
    std::vector<int64_t> shape = b.shape;
    for (size_t d = 0; d < b.split.size(); ++d)
      for (int a : b.split[d]) {
        shape[d] *= grid[size_t(a)];
        sliced = true;
      }
    // The whole tensor as the model uses it: in the file, or materialized
    // from a Hugging Face layout (then owned here until it is placed).
    void *materialized = nullptr;
    bool found;
    if (b.kind == Buffer::Weight && (!b.layout.empty() || !b.quant.empty())) {
      found = materialize(weights, b, shape, t);
      materialized = found ? const_cast<void *>(t.data) : nullptr;
    } else if (b.kind == Buffer::Weight) {
      found = weights.expect(b.name, b.dtype, shape, t);
    } else {
      found = moert_st_expect(inputs, b.name.c_str(), b.dtype,
                              int32_t(shape.size()), shape.data(),
                              &t) == MOERT_OK;
    }
    if (!found) {
      std::fprintf(stderr, "error: %s\n", moert_last_error());
      ++problems;
      continue;
    }
    if (sliced) {
      bool ok = loadSlice(b, t, grid);
      moert_free(materialized);
      materialized = nullptr;
      if (!ok) {
        std::fprintf(stderr, "error: %s\n", moert_last_error());
        ++problems;
        continue;
      }
      t.data = b.data;
      t.nbytes = b.nbytes;
    } else if (materialized) {
      b.data = materialized;
      b.owned = true;
      sliced = true; // placed: skip the alignment copy below
    }
    if (b.device) {
      // Buffers the compiled code reads on the GPU: uploaded once.
      // (A sliced weight's host copy is freed once it is on the GPU.)
      void *hostSlice = b.owned ? b.data : nullptr;
      b.owned = false;
      moert_status uploaded = moert_cuda_alloc(t.nbytes, &b.data);
      if (uploaded == MOERT_OK)
        uploaded = moert_cuda_copy(b.data, t.data, t.nbytes);
      moert_free(hostSlice);
      if (uploaded != MOERT_OK) {
        std::fprintf(stderr, "error: %s '%s' goes to the GPU: %s\n",
                     b.kind == Buffer::Weight ? "weight" : "input",
                     b.name.c_str(), moert_last_error());
        b.data = nullptr;
        ++problems;
      }
      continue;
    }
    if (sliced)
      continue;
    b.data = const_cast<void *>(t.data);
    // Compiled code may assume natural alignment; copy what is not aligned.
    if (reinterpret_cast<uintptr_t>(t.data) % 64 != 0 && t.nbytes) {
      if (moert_alloc(t.nbytes, &b.data) != MOERT_OK) {
        std::fprintf(stderr, "error: %s\n", moert_last_error());
        ++problems;
        continue;
      }
      std::memcpy(b.data, t.data, t.nbytes);
      b.owned = true;
    }
  }
  // A generator's cache on the GPU is one buffer: the step reads its input
  // and writes its output in place (the rows it adds are the ones it reads
  // last), so no step copies the cache.
  if (isGenerator && !problems)
    for (auto &[past, out] : generator.caches)
      if (past->device && out->device && past->data) {
        out->data = past->data;
        out->alias = true;
      }
  for (Buffer &b : buffers) {
    if (b.kind != Buffer::Output || problems || b.alias)
      continue;
    if (moert_alloc(b.nbytes, &b.data) != MOERT_OK) {
      std::fprintf(stderr, "error: output '%s': %s\n", b.name.c_str(),
                   moert_last_error());
      ++problems;
      continue;
    }
    b.owned = true;
    // Poison: an output the model fails to write shows up as NaNs.
    std::memset(b.data, 0xFF, b.nbytes);
    if (b.device) {
      // Written on the GPU: the host copy receives it after the runs.
      b.host = b.data;
      if (moert_cuda_alloc(b.nbytes, &b.data) != MOERT_OK ||
          moert_cuda_copy(b.data, b.host, b.nbytes) != MOERT_OK) {
        std::fprintf(stderr, "error: output '%s' on the GPU: %s\n",
                     b.name.c_str(), moert_last_error());
        b.data = nullptr;
        ++problems;
      }
    }
  }

  int rc = 0;
  // All ranks agree before the first collective.
  int64_t problemsAnywhere = moert_comm_sum_all(problems);
  agreed = problemsAnywhere != 0;
  if (problemsAnywhere && !problems) {
    std::fprintf(stderr, "error: rank %d: another rank could not load its "
                         "weights or inputs; nothing was run\n",
                 moert_comm_world_rank());
    rc = 1;
  } else if (problems) {
    std::fprintf(stderr, "error: %d problem%s with the weights or inputs; "
                         "nothing was run\n",
                 problems, problems == 1 ? "" : "s");
    rc = 1;
  } else if (isGenerator) {
    std::vector<void *> args;
    for (Buffer &b : buffers)
      args.push_back(b.data);
    rc = generate(generator, args, buffers, gen, run, outputPath, leader);
  } else {
    std::vector<void *> args;
    for (Buffer &b : buffers)
      args.push_back(b.data);
    for (long i = 0; i < warmup; ++i)
      run(args.data());
    std::vector<double> us;
    for (long i = 0; i < repeat; ++i) {
      uint64_t t0 = moert_now_ns();
      run(args.data());
      us.push_back(double(moert_now_ns() - t0) / 1000.0);
    }
    // Device outputs come back to their host copies.
    for (Buffer &b : buffers) {
      if (b.kind != Buffer::Output || !b.device || rc)
        continue;
      if (moert_cuda_copy(b.host, b.data, b.nbytes) != MOERT_OK) {
        std::fprintf(stderr, "error: output '%s' from the GPU: %s\n",
                     b.name.c_str(), moert_last_error());
        rc = 1;
      }
    }
    if (const char *p = std::getenv("MOERT_COMM_PROFILE"); p && *p == '1')
      moert_comm_profile_print();
    std::sort(us.begin(), us.end());
    if (leader)
      std::printf("latency: median %.1f us, min %.1f us over %ld runs\n",
                us[us.size() / 2], us.front(), repeat);

    // Every rank holds the whole output; the first writes it.
    std::vector<moert_st_tensor> outs;
    for (const Buffer &b : buffers) {
      if (b.kind != Buffer::Output || !leader)
        continue;
      Buffer onHost = b;
      if (b.device)
        onHost.data = b.host;
      std::printf("checksum %s: %.6g\n", b.name.c_str(), checksum(onHost));
      moert_st_tensor t{};
      t.name = b.name.c_str();
      t.dtype = b.dtype;
      t.rank = int32_t(b.shape.size());
      for (size_t i = 0; i < b.shape.size(); ++i)
        t.shape[i] = b.shape[i];
      t.data = b.device ? b.host : b.data;
      t.nbytes = b.nbytes;
      outs.push_back(t);
    }
    if (!rc && leader &&
        moert_st_write(outputPath, outs.size(), outs.data()) != MOERT_OK) {
      std::fprintf(stderr, "error: %s\n", moert_last_error());
      rc = 1;
    }
  }
  for (Buffer &b : buffers) {
    if (b.alias)
      continue;
    if (b.device) {
      if (b.data)
        moert_cuda_free(b.data);
      if (b.host)
        moert_free(b.host);
    } else if (b.pinned) {
      moert_cuda_host_free(b.data);
    } else if (b.owned) {
      moert_free(b.data);
    }
  }
  moert_st_close(inputs);
  return rc;
}
} // namespace

extern "C" int moert_model_main_fallback(int argc, char **argv,
                                         const char *signature,
                                         void (*run)(void **buffers),
                                         const char *cpuSignature,
                                         void (*cpuRun)(void **buffers)) {
  const char *choice = std::getenv("MOERT_DEVICE");
  std::string device = choice ? choice : "";
  if (!device.empty() && device != "cpu" && device != "gpu") {
    std::fprintf(stderr, "error: MOERT_DEVICE must be cpu or gpu, got '%s'\n",
                 choice);
    return 2;
  }
  if (device == "cpu")
    return moert_model_main(argc, argv, cpuSignature, cpuRun);
  if (device.empty() && moert_cuda_init() != MOERT_OK) {
    bool help = false;
    for (int i = 1; i < argc; ++i)
      help |= !std::strcmp(argv[i], "--help") || !std::strcmp(argv[i], "-h");
    if (!help)
      std::fprintf(stderr,
                   "note: no usable GPU (%s): running the model's CPU code "
                   "(MOERT_DEVICE=gpu fails instead)\n",
                   moert_last_error());
    return moert_model_main(argc, argv, cpuSignature, cpuRun);
  }
  return moert_model_main(argc, argv, signature, run);
}
