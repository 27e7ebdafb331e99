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
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

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
  std::string layout;   // e.g. "stack-transpose": not loadable yet
};

bool parseSignature(const char *text, std::vector<Buffer> &out) {
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.empty())
      continue;
    std::istringstream fields(line);
    std::string kind, name, dtype, shape, layout;
    if (!(fields >> kind >> name >> dtype >> shape))
      return false;
    fields >> layout; // optional: how the checkpoint stores the weight
    Buffer b;
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
    if (moert_dtype_from_name(dtype.c_str(), &b.dtype) != MOERT_OK)
      return false;
    if (shape != "scalar") {
      std::istringstream dims(shape);
      std::string d;
      while (std::getline(dims, d, 'x'))
        b.shape.push_back(std::stoll(d));
    }
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
               "usage: %s --weights W.safetensors --input X.safetensors "
               "--output Y.safetensors [--repeat N] [--warmup N]\n",
               argv0);
  std::fprintf(stderr, "model buffers:\n");
  for (const Buffer &b : buffers)
    std::fprintf(stderr, "  %-6s %-24s %-4s %s%s\n",
                 b.kind == Buffer::Input    ? "input"
                 : b.kind == Buffer::Weight ? "weight"
                                            : "output",
                 b.name.c_str(), moert_dtype_name(b.dtype),
                 shapeString(b.shape).c_str(), b.device ? " (on the GPU)" : "");
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

} // namespace

extern "C" int moert_model_main(int argc, char **argv, const char *signature,
                                void (*run)(void **buffers)) {
  std::vector<Buffer> buffers;
  if (!parseSignature(signature, buffers)) {
    std::fprintf(stderr, "error: the model's embedded signature is malformed\n");
    return 1;
  }
  const char *weightsPath = nullptr, *inputPath = nullptr,
             *outputPath = nullptr;
  long repeat = 10, warmup = 1;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> const char * {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "error: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    auto count = [&](long &out) {
      const char *v = value();
      char *end = nullptr;
      out = std::strtol(v, &end, 10);
      if (!*v || *end || out < 0 || out > 1000000) {
        std::fprintf(stderr, "error: %s needs a count in [0, 1000000], got "
                             "'%s'\n",
                     a.c_str(), v);
        std::exit(2);
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
    else if (a == "--help" || a == "-h") {
      usage(argv[0], buffers);
      return 0;
    } else {
      std::fprintf(stderr, "error: unknown argument '%s'\n", a.c_str());
      usage(argv[0], buffers);
      return 2;
    }
  }
  bool needWeights = false, needInputs = false;
  for (const Buffer &b : buffers) {
    needWeights |= b.kind == Buffer::Weight;
    needInputs |= b.kind == Buffer::Input;
  }
  if ((needWeights && !weightsPath) || (needInputs && !inputPath) ||
      !outputPath) {
    std::fprintf(stderr, "error: missing %s\n",
                 !outputPath                  ? "--output"
                 : needWeights && !weightsPath ? "--weights"
                                               : "--input");
    usage(argv[0], buffers);
    return 2;
  }
  if (repeat < 1)
    repeat = 1;

  moert_st_file *weights = nullptr, *inputs = nullptr;
  if (needWeights) {
    std::fprintf(stderr, "loading weights from %s\n", weightsPath);
    if (moert_st_open(weightsPath, &weights) != MOERT_OK) {
      std::fprintf(stderr, "error: %s\n", moert_last_error());
      return 1;
    }
  }
  if (needInputs && moert_st_open(inputPath, &inputs) != MOERT_OK) {
    std::fprintf(stderr, "error: %s\n", moert_last_error());
    moert_st_close(weights);
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
    moert_st_close(weights);
    moert_st_close(inputs);
    return 1;
  }

  // Check everything first and report every problem.
  int problems = 0;
  for (Buffer &b : buffers) {
    if (b.kind == Buffer::Output)
      continue;
    moert_st_file *file = b.kind == Buffer::Weight ? weights : inputs;
    if (!b.layout.empty()) {
      std::fprintf(stderr,
                   "error: weight '%s' is stored as '%s' in the checkpoint "
                   "(an imported Hugging Face layout); this runtime loads "
                   "weights only as they are used\n",
                   b.name.c_str(), b.layout.c_str());
      ++problems;
      continue;
    }
    moert_st_tensor t;
    if (moert_st_expect(file, b.name.c_str(), b.dtype, int32_t(b.shape.size()),
                        b.shape.data(), &t) != MOERT_OK) {
      std::fprintf(stderr, "error: %s\n", moert_last_error());
      ++problems;
      continue;
    }
    if (b.device) {
      // Buffers the compiled code reads on the GPU: uploaded once.
      if (moert_cuda_alloc(t.nbytes, &b.data) != MOERT_OK ||
          moert_cuda_copy(b.data, t.data, t.nbytes) != MOERT_OK) {
        std::fprintf(stderr, "error: %s '%s' goes to the GPU: %s\n",
                     b.kind == Buffer::Weight ? "weight" : "input",
                     b.name.c_str(), moert_last_error());
        b.data = nullptr;
        ++problems;
      }
      continue;
    }
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
  for (Buffer &b : buffers) {
    if (b.kind != Buffer::Output || problems)
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
  if (problems) {
    std::fprintf(stderr, "error: %d problem%s with the weights or inputs; "
                         "nothing was run\n",
                 problems, problems == 1 ? "" : "s");
    rc = 1;
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
    std::sort(us.begin(), us.end());
    std::printf("latency: median %.1f us, min %.1f us over %ld runs\n",
                us[us.size() / 2], us.front(), repeat);

    std::vector<moert_st_tensor> outs;
    for (const Buffer &b : buffers) {
      if (b.kind != Buffer::Output)
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
    if (!rc &&
        moert_st_write(outputPath, outs.size(), outs.data()) != MOERT_OK) {
      std::fprintf(stderr, "error: %s\n", moert_last_error());
      rc = 1;
    }
  }
  for (Buffer &b : buffers) {
    if (b.device) {
      if (b.data)
        moert_cuda_free(b.data);
      if (b.host)
        moert_free(b.host);
    } else if (b.owned) {
      moert_free(b.data);
    }
  }
  moert_st_close(weights);
  moert_st_close(inputs);
  return rc;
}
