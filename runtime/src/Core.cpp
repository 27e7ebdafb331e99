//===- Core.cpp - Errors, dtypes, conversions, memory, time ----------------===//
//
// Part of moe-compiler's runtime.
//
//===----------------------------------------------------------------------===//

#include "Internal.h"

#include <chrono>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <vector>

namespace {
thread_local std::string lastError;
} // namespace

moert_status moert::fail(moert_status status, const char *format, ...) {
  char buffer[1024];
  va_list args;
  va_start(args, format);
  std::vsnprintf(buffer, sizeof(buffer), format, args);
  va_end(args);
  lastError = buffer;
  return status;
}

extern "C" const char *moert_last_error(void) { return lastError.c_str(); }

extern "C" const char *moert_status_string(moert_status status) {
  switch (status) {
  case MOERT_OK:
    return "ok";
  case MOERT_ERR_IO:
    return "I/O error";
  case MOERT_ERR_FORMAT:
    return "format error";
  case MOERT_ERR_NOT_FOUND:
    return "not found";
  case MOERT_ERR_INVALID_ARGUMENT:
    return "invalid argument";
  case MOERT_ERR_OUT_OF_MEMORY:
    return "out of memory";
  case MOERT_ERR_UNSUPPORTED:
    return "unsupported";
  case MOERT_ERR_DEVICE:
    return "device error";
  }
  return "unknown status";
}

namespace {
struct DTypeInfo {
  moert_dtype dtype;
  const char *name;
  size_t size;
};
const DTypeInfo kDTypes[] = {
    {MOERT_F32, "F32", 4},         {MOERT_F16, "F16", 2},
    {MOERT_BF16, "BF16", 2},       {MOERT_F64, "F64", 8},
    {MOERT_I64, "I64", 8},         {MOERT_I32, "I32", 4},
    {MOERT_I16, "I16", 2},         {MOERT_I8, "I8", 1},
    {MOERT_U8, "U8", 1},           {MOERT_BOOL, "BOOL", 1},
    {MOERT_F8_E4M3, "F8_E4M3", 1}, {MOERT_F8_E5M2, "F8_E5M2", 1}};
} // namespace

extern "C" size_t moert_dtype_size(moert_dtype dtype) {
  for (const DTypeInfo &d : kDTypes)
    if (d.dtype == dtype)
      return d.size;
  return 0;
}

extern "C" const char *moert_dtype_name(moert_dtype dtype) {
  for (const DTypeInfo &d : kDTypes)
    if (d.dtype == dtype)
      return d.name;
  return "?";
}

extern "C" moert_status moert_dtype_from_name(const char *name,
                                              moert_dtype *out) {
  for (const DTypeInfo &d : kDTypes)
    if (std::strcmp(d.name, name) == 0) {
      *out = d.dtype;
      return MOERT_OK;
    }
  return moert::fail(MOERT_ERR_UNSUPPORTED, "unknown dtype '%s'", name);
}

extern "C" float moert_bf16_to_f32(uint16_t v) {
  uint32_t bits = uint32_t(v) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

extern "C" uint16_t moert_f32_to_bf16(float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, 4);
  if ((bits & 0x7FFFFFFFu) > 0x7F800000u) // NaN: keep it quiet and a NaN
    return uint16_t((bits >> 16) | 0x40);
  bits += 0x7FFFu + ((bits >> 16) & 1u);
  return uint16_t(bits >> 16);
}

extern "C" float moert_f16_to_f32(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1F;
  uint32_t mant = h & 0x3FF;
  uint32_t bits;
  if (exp == 0x1F) {
    bits = sign | 0x7F800000u | (mant << 13);
  } else if (exp != 0) {
    bits = sign | ((exp + 112) << 23) | (mant << 13);
  } else if (mant == 0) {
    bits = sign;
  } else { // subnormal: value = mant * 2^-24
    float f = std::ldexp(float(mant), -24);
    std::memcpy(&bits, &f, 4);
    bits |= sign;
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

extern "C" uint16_t moert_f32_to_f16(float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, 4);
  uint16_t sign = uint16_t((bits >> 16) & 0x8000);
  uint32_t absBits = bits & 0x7FFFFFFFu;
  if (absBits > 0x7F800000u) // NaN
    return uint16_t(sign | 0x7E00 | ((absBits >> 13) & 0x3FF));
  if (absBits >= 0x477FF000u) // rounds to >= 65520: infinity
    return uint16_t(sign | 0x7C00);
  if (absBits < 0x38800000u) { // below the smallest normal half (2^-14)
    // Subnormal: multiples of 2^-24, round to nearest even.
    float a;
    std::memcpy(&a, &absBits, 4);
    float q = std::nearbyint(a * 16777216.0f);
    return uint16_t(sign | uint16_t(q));
  }
  // Normal: rebias the exponent and round the mantissa to 10 bits.
  uint32_t rounded = absBits + 0xFFFu + ((absBits >> 13) & 1u);
  uint32_t exp = (rounded >> 23) - 112;
  uint32_t mant = (rounded >> 13) & 0x3FF;
  return uint16_t(sign | (exp << 10) | mant);
}

extern "C" float moert_f8e4m3_to_f32(uint8_t v) {
  // 1 sign, 4 exponent (bias 7), 3 mantissa bits; no infinities, and
  // S.1111.111 is NaN. Subnormals (exponent 0) are m / 8 * 2^-6.
  uint32_t exp = (v >> 3) & 0xF, mant = v & 7;
  if (exp == 0xF && mant == 7)
    return std::numeric_limits<float>::quiet_NaN();
  float f = exp ? std::ldexp(float(8 + mant), int(exp) - 10)
                : std::ldexp(float(mant), -9);
  return v & 0x80 ? -f : f;
}

extern "C" float moert_f8e5m2_to_f32(uint8_t v) {
  // The high byte of an IEEE half.
  return moert_f16_to_f32(uint16_t(v) << 8);
}

extern "C" moert_status moert_convert(const void *src, moert_dtype srcType,
                                      void *dst, moert_dtype dstType,
                                      size_t n) {
  auto isFloat = [](moert_dtype t) {
    return t == MOERT_F32 || t == MOERT_F16 || t == MOERT_BF16;
  };
  bool fp8 = srcType == MOERT_F8_E4M3 || srcType == MOERT_F8_E5M2;
  if (!(isFloat(srcType) || fp8) || !isFloat(dstType))
    return moert::fail(MOERT_ERR_UNSUPPORTED,
                       "conversion from %s to %s is not supported",
                       moert_dtype_name(srcType), moert_dtype_name(dstType));
  for (size_t i = 0; i < n; ++i) {
    float f;
    switch (srcType) {
    case MOERT_F32:
      std::memcpy(&f, static_cast<const float *>(src) + i, 4);
      break;
    case MOERT_F16:
      f = moert_f16_to_f32(static_cast<const uint16_t *>(src)[i]);
      break;
    case MOERT_F8_E4M3:
      f = moert_f8e4m3_to_f32(static_cast<const uint8_t *>(src)[i]);
      break;
    case MOERT_F8_E5M2:
      f = moert_f8e5m2_to_f32(static_cast<const uint8_t *>(src)[i]);
      break;
    default:
      f = moert_bf16_to_f32(static_cast<const uint16_t *>(src)[i]);
      break;
    }
    switch (dstType) {
    case MOERT_F32:
      std::memcpy(static_cast<float *>(dst) + i, &f, 4);
      break;
    case MOERT_F16:
      static_cast<uint16_t *>(dst)[i] = moert_f32_to_f16(f);
      break;
    default:
      static_cast<uint16_t *>(dst)[i] = moert_f32_to_bf16(f);
      break;
    }
  }
  return MOERT_OK;
}

extern "C" moert_status moert_alloc(size_t bytes, void **out) {
  *out = nullptr;
  size_t rounded = (bytes + 63) / 64 * 64;
  if (rounded < bytes)
    return moert::fail(MOERT_ERR_OUT_OF_MEMORY,
                       "cannot allocate %zu bytes: size overflows", bytes);
  void *p = std::aligned_alloc(64, rounded ? rounded : 64);
  if (!p)
    return moert::fail(MOERT_ERR_OUT_OF_MEMORY,
                       "out of host memory allocating %zu bytes", bytes);
  *out = p;
  return MOERT_OK;
}

extern "C" void moert_free(void *ptr) { std::free(ptr); }

extern "C" uint64_t moert_now_ns(void) {
  return uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(
                      std::chrono::steady_clock::now().time_since_epoch())
                      .count());
}

//===----------------------------------------------------------------------===//
// memrefCopy: the copy between memrefs of different layouts that MLIR's
// memref-to-LLVM lowering calls (as mlir_c_runner_utils provides it), so
// that compiled models need no MLIR library at run time.
//===----------------------------------------------------------------------===//

namespace {
/// An unranked memref as the lowering passes it: the rank and a pointer to
/// the ranked descriptor {allocated, aligned, offset, sizes[rank],
/// strides[rank]}.
struct UnrankedMemRef {
  int64_t rank;
  void *descriptor;
};
struct StridedView {
  char *aligned;
  int64_t offset;
  const int64_t *sizes, *strides;
};
StridedView viewOf(const UnrankedMemRef &m) {
  auto *fields = static_cast<char *>(m.descriptor);
  StridedView v;
  std::memcpy(&v.aligned, fields + sizeof(void *), sizeof(void *));
  std::memcpy(&v.offset, fields + 2 * sizeof(void *), sizeof(int64_t));
  v.sizes = reinterpret_cast<const int64_t *>(fields + 2 * sizeof(void *) +
                                              sizeof(int64_t));
  v.strides = v.sizes + m.rank;
  return v;
}
} // namespace

extern "C" void memrefCopy(int64_t elemSize, UnrankedMemRef *src,
                           UnrankedMemRef *dst) {
  int64_t rank = src->rank;
  StridedView s = viewOf(*src), d = viewOf(*dst);
  for (int64_t i = 0; i < rank; ++i)
    if (s.sizes[i] == 0)
      return;
  // Odometer over all dimensions but the last, which is copied in one go
  // when both sides are contiguous in it.
  std::vector<int64_t> index(size_t(rank), 0);
  int64_t last = rank ? s.sizes[rank - 1] : 1;
  bool rowContiguous =
      rank == 0 || (s.strides[rank - 1] == 1 && d.strides[rank - 1] == 1);
  while (true) {
    int64_t so = s.offset, dof = d.offset;
    for (int64_t i = 0; i + 1 < rank; ++i) {
      so += index[size_t(i)] * s.strides[i];
      dof += index[size_t(i)] * d.strides[i];
    }
    if (rowContiguous) {
      std::memcpy(d.aligned + dof * elemSize, s.aligned + so * elemSize,
                  size_t(last * elemSize));
    } else {
      for (int64_t j = 0; j < last; ++j)
        std::memcpy(d.aligned + (dof + j * d.strides[rank - 1]) * elemSize,
                    s.aligned + (so + j * s.strides[rank - 1]) * elemSize,
                    size_t(elemSize));
    }
    int64_t i = rank - 2;
    for (; i >= 0; --i) {
      if (++index[size_t(i)] < s.sizes[i])
        break;
      index[size_t(i)] = 0;
    }
    if (i < 0)
      return;
  }
}
