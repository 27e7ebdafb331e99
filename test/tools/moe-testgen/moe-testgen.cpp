//===- moe-testgen.cpp - Generate and check end-to-end layer tests ---------===//
//
// Part of moe-compiler's test suite.
//
//   moe-testgen gen --out DIR [layer options] [--seed N]
//     writes DIR/model.mlir, DIR/weights.safetensors, DIR/input.safetensors
//     and DIR/expected.safetensors (the reference output "y", and the
//     reference routing "ids"/"weights" for debugging); with --model-only
//     just DIR/model.mlir (compiling needs no weights: large layers are
//     compiled on one machine and generated where they run); with
//     --no-reference no expected.safetensors (layers too large for the C++
//     reference, checked against another executable instead)
//   moe-testgen compare --expected E --actual A [--dtype bf16|f16|f32]
//                       [--tensor NAME] [--rtol R]
//     compares tensor NAME (default "y") within the dtype's tolerance; exit
//     1 on mismatch
//
// Inputs are fresh random values for every run unless --seed is given; the
// seed is printed so that a failure can be reproduced.
//
//===----------------------------------------------------------------------===//

#include "Reference.h"

#include "moert/moert.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

using namespace moe_ref;

namespace {

[[noreturn]] void die(const std::string &message) {
  std::fprintf(stderr, "moe-testgen: error: %s\n", message.c_str());
  std::exit(2);
}

moert_dtype toMoert(DType t) {
  return t == DType::F32 ? MOERT_F32 : t == DType::F16 ? MOERT_F16 : MOERT_BF16;
}

DType parseDType(const std::string &s) {
  if (s == "f32")
    return DType::F32;
  if (s == "f16")
    return DType::F16;
  if (s == "bf16")
    return DType::BF16;
  die("unknown dtype '" + s + "' (expected f32, f16 or bf16)");
}

/// Storage for one tensor being written.
struct Blob {
  std::string name;
  moert_dtype dtype;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;
};

Blob toBlob(const std::string &name, const std::vector<int64_t> &shape,
            const std::vector<float> &values, moert_dtype dtype) {
  Blob b{name, dtype, shape, {}};
  b.bytes.resize(values.size() * moert_dtype_size(dtype));
  if (moert_convert(values.data(), MOERT_F32, b.bytes.data(), dtype,
                    values.size()) != MOERT_OK)
    die(moert_last_error());
  return b;
}

void writeFile(const std::string &path, const std::vector<Blob> &blobs) {
  std::vector<moert_st_tensor> tensors;
  for (const Blob &b : blobs) {
    moert_st_tensor t{};
    t.name = b.name.c_str();
    t.dtype = b.dtype;
    t.rank = int32_t(b.shape.size());
    for (size_t i = 0; i < b.shape.size(); ++i)
      t.shape[i] = b.shape[i];
    t.data = b.bytes.data();
    t.nbytes = b.bytes.size();
    tensors.push_back(t);
  }
  if (moert_st_write(path.c_str(), tensors.size(), tensors.data()) != MOERT_OK)
    die(moert_last_error());
}

std::vector<float> readF32(moert_st_file *file, const char *name) {
  moert_st_tensor t;
  if (moert_st_find(file, name, &t) != MOERT_OK)
    die(moert_last_error());
  size_t n = t.nbytes / moert_dtype_size(t.dtype);
  std::vector<float> out(n);
  if (moert_convert(t.data, t.dtype, out.data(), MOERT_F32, n) != MOERT_OK)
    die(moert_last_error());
  return out;
}

/// DIR/model.mlir for layer `c`.
void writeModel(const std::string &out, const LayerConfig &c) {
  std::string mlir = layerMlir(c);
  FILE *f = std::fopen((out + "/model.mlir").c_str(), "w");
  if (!f || std::fputs(mlir.c_str(), f) < 0 || std::fclose(f) != 0)
    die("cannot write " + out + "/model.mlir");
}

int generate(int argc, char **argv) {
  LayerConfig c;
  std::string out;
  bool modelOnly = false, noReference = false;
  uint64_t seed = uint64_t(
      std::chrono::high_resolution_clock::now().time_since_epoch().count());
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc)
        die("missing value after " + a);
      return argv[++i];
    };
    auto integer = [&]() { return std::stoll(value()); };
    if (a == "--out")
      out = value();
    else if (a == "--model-only")
      modelOnly = true;
    else if (a == "--no-reference")
      noReference = true;
    else if (a == "--seed")
      seed = std::stoull(value());
    else if (a == "--tokens")
      c.tokens = integer();
    else if (a == "--hidden")
      c.hidden = integer();
    else if (a == "--ffn")
      c.ffn = integer();
    else if (a == "--experts")
      c.experts = integer();
    else if (a == "--top-k")
      c.topK = integer();
    else if (a == "--dtype")
      c.dtype = parseDType(value());
    else if (a == "--sigmoid")
      c.sigmoid = true;
    else if (a == "--score-after-topk")
      c.scoreAfterTopk = true;
    else if (a == "--renormalize")
      c.renormalize = true;
    else if (a == "--scaling")
      c.scaling = std::stod(value());
    else if (a == "--capacity")
      c.capacityFactor = std::stod(value());
    else if (a == "--min-capacity")
      c.minCapacity = integer();
    else if (a == "--drop-by-score")
      c.dropByScore = true;
    else if (a == "--groups") {
      c.nGroup = integer();
      c.topkGroup = std::stoll(value());
    } else if (a == "--group-top2-sum")
      c.groupTop2Sum = true;
    else if (a == "--bias")
      c.bias = true;
    else if (a == "--activation") {
      std::string v = value();
      c.act = v == "relu"        ? Act::Relu
              : v == "gelu"      ? Act::Gelu
              : v == "gelu_tanh" ? Act::GeluTanh
              : v == "silu"      ? Act::Silu
                                 : (die("unknown activation '" + v + "'"),
                                    Act::Silu);
    } else if (a == "--plain")
      c.gated = false;
    else if (a == "--shared")
      c.sharedFfn = integer();
    else if (a == "--shared-gated")
      c.sharedGated = true;
    else if (a == "--shared-coef")
      c.sharedCoef = true;
    else if (a == "--mlp")
      c.mlpFfn = integer();
    else if (a == "--mlp-coef")
      c.mlpCoef = true;
    else
      die("unknown option '" + a + "'");
  }
  if (out.empty())
    die("gen needs --out DIR");
  if (modelOnly) {
    writeModel(out, c);
    return 0;
  }
  std::printf("moe-testgen: seed %llu\n", (unsigned long long)seed);

  std::mt19937_64 rng(seed);
  Tensors tensors;
  std::vector<Blob> weights, inputs;
  for (auto &[name, shape] : layerTensors(c)) {
    size_t n = 1;
    for (int64_t s : shape)
      n *= size_t(s);
    int64_t fanIn = shape.size() >= 2 ? shape[shape.size() - 2] : 1;
    double scale = 1.0 / std::sqrt(double(fanIn));
    if (name == "x")
      scale = 1.0;
    else if (name == "router")
      scale *= 4.0; // decisive routing: fewer near-ties between experts
    else if (name == "router_bias")
      scale = 0.3;
    std::uniform_real_distribution<double> dist(-scale, scale);
    bool isBias = name == "router_bias";
    DType dt = isBias ? DType::F32 : c.dtype;
    std::vector<float> v(n);
    for (float &x : v)
      x = roundTo(dt, float(dist(rng)));
    Blob blob = toBlob(name, shape, v, toMoert(dt));
    (name == "x" ? inputs : weights).push_back(std::move(blob));
    tensors[name] = std::move(v);
  }

  if (noReference) {
    writeModel(out, c);
    writeFile(out + "/weights.safetensors", weights);
    writeFile(out + "/input.safetensors", inputs);
    return 0;
  }
  std::vector<int32_t> ids;
  std::vector<float> routeWeights;
  referenceRouter(c, tensors, ids, routeWeights);
  std::vector<float> y = referenceLayer(c, tensors);
  size_t dropped = 0;
  for (int32_t id : ids)
    dropped += id < 0;
  std::printf("moe-testgen: %zu of %zu assignments dropped\n", dropped,
              ids.size());
  std::vector<Blob> expected;
  expected.push_back(toBlob("y", {c.tokens, c.hidden}, y, MOERT_F32));
  expected.push_back(toBlob("weights", {c.tokens, c.topK}, routeWeights,
                            MOERT_F32));
  Blob idBlob{"ids", MOERT_I32, {c.tokens, c.topK}, {}};
  idBlob.bytes.resize(ids.size() * 4);
  std::memcpy(idBlob.bytes.data(), ids.data(), idBlob.bytes.size());
  expected.push_back(std::move(idBlob));

  writeModel(out, c);
  writeFile(out + "/weights.safetensors", weights);
  writeFile(out + "/input.safetensors", inputs);
  writeFile(out + "/expected.safetensors", expected);
  return 0;
}

int compare(int argc, char **argv) {
  std::string expectedPath, actualPath, tensor = "y";
  DType dtype = DType::F32;
  double rtolOverride = 0.0;
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    if (i + 1 >= argc)
      die("missing value after " + a);
    if (a == "--expected")
      expectedPath = argv[++i];
    else if (a == "--actual")
      actualPath = argv[++i];
    else if (a == "--dtype")
      dtype = parseDType(argv[++i]);
    else if (a == "--tensor")
      tensor = argv[++i];
    else if (a == "--rtol")
      rtolOverride = std::stod(argv[++i]);
    else
      die("unknown option '" + a + "'");
  }
  moert_st_file *expected = nullptr, *actual = nullptr;
  if (moert_st_open(expectedPath.c_str(), &expected) != MOERT_OK ||
      moert_st_open(actualPath.c_str(), &actual) != MOERT_OK)
    die(moert_last_error());
  std::vector<float> want = readF32(expected, tensor.c_str());
  std::vector<float> got = readF32(actual, tensor.c_str());
  if (want.size() != got.size())
    die(tensor + " has " + std::to_string(got.size()) + " elements, expected " +
        std::to_string(want.size()));
  // Tolerances: both sides round at the same points, so the differences are
  // a few ulps of the dtype from libm and accumulation details; relative to
  // the output's scale.
  double rtol = dtype == DType::F32 ? 1e-4 : dtype == DType::F16 ? 4e-3 : 2e-2;
  if (rtolOverride > 0)
    rtol = rtolOverride;
  double scale = 0.0;
  for (float v : want)
    scale = std::max(scale, double(std::fabs(v)));
  double atol = rtol * std::max(scale, 1e-3);
  size_t bad = 0, worst = 0;
  double worstErr = 0.0;
  for (size_t i = 0; i < want.size(); ++i) {
    double err = std::fabs(double(got[i]) - double(want[i]));
    if (std::isnan(got[i]) || err > atol + rtol * std::fabs(want[i])) {
      if (bad++ == 0 || err > worstErr) {
        worst = i;
        worstErr = std::isnan(got[i]) ? INFINITY : err;
      }
    } else if (err > worstErr && bad == 0) {
      worstErr = err;
      worst = i;
    }
  }
  std::printf("compare: %zu elements, max |error| %.3g at %zu (got %g, "
              "expected %g), tolerance %.3g + %.3g*|expected|, %zu bad\n",
              want.size(), worstErr, worst, got[worst], want[worst], atol,
              rtol, bad);
  moert_st_close(expected);
  moert_st_close(actual);
  return bad ? 1 : 0;
}

} // namespace

int main(int argc, char **argv) {
  if (argc >= 2 && std::strcmp(argv[1], "gen") == 0)
    return generate(argc, argv);
  if (argc >= 2 && std::strcmp(argv[1], "compare") == 0)
    return compare(argc, argv);
  std::fprintf(stderr, "usage: moe-testgen gen --out DIR [options] | "
                       "compare --expected E --actual A [--dtype T]\n");
  return 2;
}
