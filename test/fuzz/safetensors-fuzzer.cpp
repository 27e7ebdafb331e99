//===- safetensors-fuzzer.cpp - libFuzzer target: safetensors reader ------===//
//
// Part of moe-compiler. Any byte string must either open with every tensor
// inside the buffer, or fail with a message; never read out of bounds.
//
//===----------------------------------------------------------------------===//

#include "moert/moert.h"

#include <cstdlib>
#include <cstring>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  moert_st_file *f = nullptr;
  if (moert_st_open_memory(data, size, "fuzz", &f) != MOERT_OK) {
    if (!*moert_last_error())
      std::abort(); // a failure must say why
    return 0;
  }
  // Touch every tensor's bytes: ASan reports any range outside the input.
  unsigned sum = 0;
  for (size_t i = 0; i < moert_st_count(f); ++i) {
    moert_st_tensor t;
    if (moert_st_info(f, i, &t) != MOERT_OK)
      std::abort();
    const uint8_t *p = static_cast<const uint8_t *>(t.data);
    if (t.nbytes && (p < data || p + t.nbytes > data + size))
      std::abort();
    for (size_t j = 0; j < t.nbytes; ++j)
      sum += p[j];
    moert_st_tensor found;
    if (moert_st_find(f, t.name, &found) != MOERT_OK || found.data != t.data)
      std::abort();
  }
  (void)moert_st_metadata(f, "format");
  moert_st_close(f);
  return int(sum & 0);
}
