//===- SafetensorsTest.cpp - moert safetensors reader and writer -----------===//
//
// Part of moe-compiler.
//
//===----------------------------------------------------------------------===//

#include "moert/moert.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <unistd.h>
#include <vector>

namespace {

/// A safetensors file from a header string and raw data bytes.
std::string makeFile(const std::string &header, const std::string &data) {
  std::string out(8, '\0');
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i)
    out[i] = char(n >> (8 * i));
  return out + header + data;
}

class SafetensorsTest : public ::testing::Test {
protected:
  void SetUp() override {
    char tmpl[] = "/tmp/moert-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir = tmpl;
  }
  void TearDown() override {
    std::string cmd = "rm -rf '" + dir + "'";
    ASSERT_EQ(std::system(cmd.c_str()), 0);
  }

  std::string write(const std::string &name, const std::string &bytes) {
    std::string path = dir + "/" + name;
    FILE *f = std::fopen(path.c_str(), "wb");
    EXPECT_NE(f, nullptr);
    std::fwrite(bytes.data(), 1, bytes.size(), f);
    std::fclose(f);
    return path;
  }

  /// Opens `bytes` from a file and expects `status` with `message` in the
  /// error; returns the message.
  std::string expectError(const std::string &bytes, moert_status status,
                          const std::string &message) {
    std::string path = write("bad.safetensors", bytes);
    moert_st_file *f = nullptr;
    EXPECT_EQ(moert_st_open(path.c_str(), &f), status);
    EXPECT_EQ(f, nullptr);
    std::string got = moert_last_error();
    EXPECT_NE(got.find(message), std::string::npos)
        << "message: " << got << "\nexpected to contain: " << message;
    // The in-memory variant validates the same way.
    moert_st_file *m = nullptr;
    EXPECT_EQ(moert_st_open_memory(bytes.data(), bytes.size(), "mem", &m),
              status);
    EXPECT_EQ(m, nullptr);
    return got;
  }

  std::string dir;
};

std::string f32Header(const std::string &shape, const std::string &offsets) {
  return R"({"t":{"dtype":"F32","shape":)" + shape +
         R"(,"data_offsets":)" + offsets + "}}";
}

TEST_F(SafetensorsTest, RoundTripsSeveralDtypesAndShapes) {
  std::vector<float> a = {1.5f, -2.0f, 3.25f, 0.0f, 7.0f, -0.5f};
  std::vector<uint16_t> b = {moert_f32_to_bf16(1.0f), moert_f32_to_bf16(-3.0f)};
  int32_t scalar = 42;
  std::vector<moert_st_tensor> ts(4);
  ts[0] = {"layers.0.w", MOERT_F32, 2, {2, 3}, a.data(), a.size() * 4};
  ts[1] = {"b", MOERT_BF16, 1, {2}, b.data(), 4};
  ts[2] = {"scalar", MOERT_I32, 0, {}, &scalar, 4};
  ts[3] = {"empty", MOERT_F16, 2, {0, 5}, nullptr, 0};
  std::string path = dir + "/ok.safetensors";
  ASSERT_EQ(moert_st_write(path.c_str(), ts.size(), ts.data()), MOERT_OK)
      << moert_last_error();

  moert_st_file *f = nullptr;
  ASSERT_EQ(moert_st_open(path.c_str(), &f), MOERT_OK) << moert_last_error();
  EXPECT_EQ(moert_st_count(f), 4u);
  moert_st_tensor t;
  int64_t shape[] = {2, 3};
  ASSERT_EQ(moert_st_expect(f, "layers.0.w", MOERT_F32, 2, shape, &t),
            MOERT_OK);
  EXPECT_EQ(std::memcmp(t.data, a.data(), 24), 0);
  ASSERT_EQ(moert_st_find(f, "b", &t), MOERT_OK);
  EXPECT_EQ(t.dtype, MOERT_BF16);
  EXPECT_EQ(moert_bf16_to_f32(static_cast<const uint16_t *>(t.data)[1]), -3.0f);
  ASSERT_EQ(moert_st_find(f, "scalar", &t), MOERT_OK);
  EXPECT_EQ(t.rank, 0);
  EXPECT_EQ(*static_cast<const int32_t *>(t.data), 42);
  ASSERT_EQ(moert_st_find(f, "empty", &t), MOERT_OK);
  EXPECT_EQ(t.nbytes, 0u);
  EXPECT_EQ(t.shape[0], 0);
  EXPECT_EQ(t.shape[1], 5);
  ASSERT_EQ(moert_st_info(f, 1, &t), MOERT_OK);
  EXPECT_STREQ(t.name, "b");
  EXPECT_EQ(moert_st_info(f, 4, &t), MOERT_ERR_INVALID_ARGUMENT);
  moert_st_close(f);
  // No temporary file is left beside the output.
  EXPECT_NE(std::system(("ls " + dir + "/*.tmp.* 2>/dev/null").c_str()), 0);
}

TEST_F(SafetensorsTest, ReadsMetadataAndEscapes) {
  std::string header =
      R"({"__metadata__":{"format":"pt","note":"a\"b\u00e9"},)"
      R"("w\u00e9":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}})";
  std::string path = write("meta.safetensors", makeFile(header + "  ", "ab"));
  moert_st_file *f = nullptr;
  ASSERT_EQ(moert_st_open(path.c_str(), &f), MOERT_OK) << moert_last_error();
  EXPECT_STREQ(moert_st_metadata(f, "format"), "pt");
  EXPECT_STREQ(moert_st_metadata(f, "note"), "a\"b\xc3\xa9");
  EXPECT_EQ(moert_st_metadata(f, "missing"), nullptr);
  moert_st_tensor t;
  EXPECT_EQ(moert_st_find(f, "w\xc3\xa9", &t), MOERT_OK);
  moert_st_close(f);
}

TEST_F(SafetensorsTest, MissingFile) {
  moert_st_file *f = nullptr;
  EXPECT_EQ(moert_st_open((dir + "/nope.safetensors").c_str(), &f),
            MOERT_ERR_IO);
  EXPECT_NE(std::string(moert_last_error()).find("No such file"),
            std::string::npos);
}

TEST_F(SafetensorsTest, EmptyFile) {
  expectError("", MOERT_ERR_FORMAT, "0-byte file is too short");
}

TEST_F(SafetensorsTest, SevenByteFile) {
  expectError("1234567", MOERT_ERR_FORMAT, "7-byte file is too short");
}

TEST_F(SafetensorsTest, HeaderLengthPastEnd) {
  std::string bytes = makeFile("{}", "");
  bytes[0] = 100;
  expectError(bytes, MOERT_ERR_FORMAT,
              "header length 100 runs past the end of the file (10 bytes)");
}

TEST_F(SafetensorsTest, HugeHeaderLength) {
  std::string bytes(16, '\xff');
  expectError(bytes, MOERT_ERR_FORMAT, "exceeds the 100 MB limit");
}

TEST_F(SafetensorsTest, UnterminatedString) {
  expectError(makeFile(R"({"t":{"dtype":"F32)", ""), MOERT_ERR_FORMAT,
              "unterminated string");
}

TEST_F(SafetensorsTest, MissingColon) {
  expectError(makeFile(R"({"t" {}})", ""), MOERT_ERR_FORMAT,
              "expected ':' after an object key");
}

TEST_F(SafetensorsTest, TrailingComma) {
  expectError(makeFile(R"({"a":{},})", ""), MOERT_ERR_FORMAT,
              "expected a string key in an object");
}

TEST_F(SafetensorsTest, GarbageAfterObject) {
  expectError(makeFile(R"({} x)", ""), MOERT_ERR_FORMAT,
              "unexpected characters after the header object");
}

TEST_F(SafetensorsTest, DeeplyNestedJson) {
  expectError(makeFile(std::string(200, '[') + std::string(200, ']'), ""),
              MOERT_ERR_FORMAT, "JSON nested too deeply");
}

TEST_F(SafetensorsTest, HeaderIsNotAnObject) {
  expectError(makeFile("[1,2]", ""), MOERT_ERR_FORMAT,
              "the header is not a JSON object");
}

TEST_F(SafetensorsTest, WrongTypeForShape) {
  expectError(makeFile(f32Header(R"("2")", "[0,8]"), std::string(8, 'x')),
              MOERT_ERR_FORMAT, "tensor 't': missing or non-array 'shape'");
}

TEST_F(SafetensorsTest, WrongTypeForDtype) {
  expectError(
      makeFile(R"({"t":{"dtype":4,"shape":[1],"data_offsets":[0,4]}})", "xxxx"),
      MOERT_ERR_FORMAT, "tensor 't': missing or non-string 'dtype'");
}

TEST_F(SafetensorsTest, WrongTypeForOffsets) {
  expectError(makeFile(f32Header("[1]", "[0]"), "xxxx"), MOERT_ERR_FORMAT,
              "'data_offsets' must be an array [begin, end]");
}

TEST_F(SafetensorsTest, UnknownDtype) {
  expectError(
      makeFile(R"({"t":{"dtype":"F8","shape":[1],"data_offsets":[0,1]}})", "x"),
      MOERT_ERR_FORMAT, "tensor 't': unknown dtype 'F8'");
}

TEST_F(SafetensorsTest, NegativeShapeEntry) {
  expectError(makeFile(f32Header("[-1]", "[0,4]"), "xxxx"), MOERT_ERR_FORMAT,
              "shape entry 0 is not a non-negative integer");
}

TEST_F(SafetensorsTest, SizeDisagreesWithOffsets) {
  expectError(makeFile(f32Header("[3]", "[0,8]"), std::string(8, 'x')),
              MOERT_ERR_FORMAT,
              "shape and dtype need 12 bytes but the data offsets span 8");
}

TEST_F(SafetensorsTest, OffsetsPastTheEnd) {
  expectError(makeFile(f32Header("[4]", "[0,16]"), std::string(8, 'x')),
              MOERT_ERR_FORMAT,
              "tensor 't': data offsets [0, 16) end past the data section "
              "(8 bytes; the file may be truncated)");
}

TEST_F(SafetensorsTest, BeginAfterEnd) {
  expectError(makeFile(f32Header("[1]", "[8,4]"), std::string(8, 'x')),
              MOERT_ERR_FORMAT, "data offsets [8, 4) begin after they end");
}

TEST_F(SafetensorsTest, OverlappingTensors) {
  std::string header =
      R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
      R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})";
  expectError(makeFile(header, std::string(12, 'x')), MOERT_ERR_FORMAT,
              "tensor 'b': its data overlaps tensor 'a'");
}

TEST_F(SafetensorsTest, DuplicatedNames) {
  std::string header =
      R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
      R"("a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})";
  expectError(makeFile(header, std::string(8, 'x')), MOERT_ERR_FORMAT,
              "tensor 'a': the name appears twice");
}

TEST_F(SafetensorsTest, ShapeProductOverflows) {
  expectError(makeFile(f32Header("[4611686018427387904,4]", "[0,4]"), "xxxx"),
              MOERT_ERR_FORMAT, "overflows");
}

TEST_F(SafetensorsTest, RankAboveEight) {
  expectError(makeFile(f32Header("[1,1,1,1,1,1,1,1,1]", "[0,4]"), "xxxx"),
              MOERT_ERR_FORMAT, "rank 9 exceeds the supported 8");
}

TEST_F(SafetensorsTest, TruncatedData) {
  // A valid file cut short in its data section.
  std::vector<float> a(16, 1.0f);
  moert_st_tensor t = {"w", MOERT_F32, 1, {16}, a.data(), 64};
  std::string path = dir + "/full.safetensors";
  ASSERT_EQ(moert_st_write(path.c_str(), 1, &t), MOERT_OK);
  FILE *f = std::fopen(path.c_str(), "rb");
  std::string bytes(4096, '\0');
  bytes.resize(std::fread(&bytes[0], 1, bytes.size(), f));
  std::fclose(f);
  bytes.resize(bytes.size() - 10);
  expectError(bytes, MOERT_ERR_FORMAT, "tensor 'w': data offsets [0, 64) end "
                                       "past the data section (54 bytes");
}

TEST_F(SafetensorsTest, ExpectReportsMissingShapeAndDtype) {
  std::vector<uint16_t> w(8 * 4, 0);
  moert_st_tensor t = {"w_up", MOERT_BF16, 2, {8, 4}, w.data(), w.size() * 2};
  std::string path = dir + "/w.safetensors";
  ASSERT_EQ(moert_st_write(path.c_str(), 1, &t), MOERT_OK);
  moert_st_file *f = nullptr;
  ASSERT_EQ(moert_st_open(path.c_str(), &f), MOERT_OK);
  int64_t good[] = {8, 4}, bad[] = {8, 8};
  EXPECT_EQ(moert_st_expect(f, "w_down", MOERT_BF16, 2, good, nullptr),
            MOERT_ERR_NOT_FOUND);
  EXPECT_NE(std::string(moert_last_error()).find("tensor 'w_down' is missing"),
            std::string::npos);
  EXPECT_EQ(moert_st_expect(f, "w_up", MOERT_BF16, 2, bad, nullptr),
            MOERT_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(moert_last_error())
                .find("tensor 'w_up' has shape [8, 4] but the model needs "
                      "[8, 8]"),
            std::string::npos);
  EXPECT_EQ(moert_st_expect(f, "w_up", MOERT_F16, 2, good, nullptr),
            MOERT_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(moert_last_error())
                .find("tensor 'w_up' has dtype BF16 but the model needs F16"),
            std::string::npos);
  EXPECT_EQ(moert_st_expect(f, "w_up", MOERT_BF16, 2, good, nullptr),
            MOERT_OK);
  moert_st_close(f);
}

TEST_F(SafetensorsTest, WriteIntoMissingDirectoryLeavesNothing) {
  float v = 1.0f;
  moert_st_tensor t = {"v", MOERT_F32, 1, {1}, &v, 4};
  std::string path = dir + "/no/such/dir/out.safetensors";
  EXPECT_EQ(moert_st_write(path.c_str(), 1, &t), MOERT_ERR_IO);
  EXPECT_NE(std::string(moert_last_error()).find(path), std::string::npos);
  EXPECT_NE(access(path.c_str(), F_OK), 0);
}

TEST_F(SafetensorsTest, WriteRejectsDuplicatesAndKeepsTheOldFile) {
  float v = 1.0f;
  moert_st_tensor ok = {"v", MOERT_F32, 1, {1}, &v, 4};
  std::string path = dir + "/keep.safetensors";
  ASSERT_EQ(moert_st_write(path.c_str(), 1, &ok), MOERT_OK);
  moert_st_tensor dup[] = {ok, ok};
  EXPECT_EQ(moert_st_write(path.c_str(), 2, dup), MOERT_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(moert_last_error()).find("'v' appears twice"),
            std::string::npos);
  moert_st_file *f = nullptr;
  ASSERT_EQ(moert_st_open(path.c_str(), &f), MOERT_OK);
  EXPECT_EQ(moert_st_count(f), 1u);
  moert_st_close(f);
}

TEST(ConversionTest, Bf16RoundsToNearestEven) {
  EXPECT_EQ(moert_f32_to_bf16(1.0f), 0x3F80);
  // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties go to the even 1.0.
  EXPECT_EQ(moert_f32_to_bf16(1.00390625f), 0x3F80);
  // 1 + 3 * 2^-8 is halfway between 1 + 2^-7 and 1 + 2^-6: to the even one.
  EXPECT_EQ(moert_f32_to_bf16(1.01171875f), 0x3F82);
  EXPECT_EQ(moert_f32_to_bf16(-2.0f), 0xC000);
  EXPECT_EQ(moert_f32_to_bf16(INFINITY), 0x7F80);
  EXPECT_TRUE(std::isnan(moert_bf16_to_f32(moert_f32_to_bf16(NAN))));
  EXPECT_EQ(moert_bf16_to_f32(0x3FC0), 1.5f);
}

TEST(ConversionTest, F16ValuesRoundingInfinityAndSubnormals) {
  EXPECT_EQ(moert_f32_to_f16(1.0f), 0x3C00);
  EXPECT_EQ(moert_f32_to_f16(-2.5f), 0xC100);
  EXPECT_EQ(moert_f32_to_f16(65504.0f), 0x7BFF);
  EXPECT_EQ(moert_f32_to_f16(65520.0f), 0x7C00); // rounds up to infinity
  EXPECT_EQ(moert_f32_to_f16(1e10f), 0x7C00);
  // 1 + 2^-11 is halfway between 1 and the next half: ties to even (1.0).
  EXPECT_EQ(moert_f32_to_f16(1.00048828125f), 0x3C00);
  // The smallest subnormal, 2^-24, and half of it (ties to even: 0).
  EXPECT_EQ(moert_f32_to_f16(5.9604644775390625e-08f), 0x0001);
  EXPECT_EQ(moert_f32_to_f16(2.98023223876953125e-08f), 0x0000);
  EXPECT_EQ(moert_f16_to_f32(0x0001), 5.9604644775390625e-08f);
  EXPECT_EQ(moert_f16_to_f32(0x03FF), 6.09755516052246094e-05f);
  EXPECT_EQ(moert_f16_to_f32(0x7C00), INFINITY);
  EXPECT_TRUE(std::isnan(moert_f16_to_f32(moert_f32_to_f16(NAN))));
  // Every finite half survives a round trip through f32.
  for (uint32_t h = 0; h < 0x10000; ++h) {
    if ((h & 0x7C00) == 0x7C00)
      continue;
    ASSERT_EQ(moert_f32_to_f16(moert_f16_to_f32(uint16_t(h))), h) << h;
  }
}

TEST(ConversionTest, BulkConvertRejectsIntegers) {
  float in[2] = {1.0f, 2.0f};
  uint16_t out[2];
  ASSERT_EQ(moert_convert(in, MOERT_F32, out, MOERT_BF16, 2), MOERT_OK);
  EXPECT_EQ(out[1], 0x4000);
  EXPECT_EQ(moert_convert(in, MOERT_F32, out, MOERT_I32, 2),
            MOERT_ERR_UNSUPPORTED);
  EXPECT_NE(std::string(moert_last_error()).find("F32 to I32"),
            std::string::npos);
}

TEST(ConversionTest, Fp8E4M3AndE5M2Values) {
  // E4M3: bias 7, 3 mantissa bits, no infinities, S.1111.111 NaN.
  EXPECT_EQ(moert_f8e4m3_to_f32(0x38), 1.0f);
  EXPECT_EQ(moert_f8e4m3_to_f32(0xC4), -3.0f);
  EXPECT_EQ(moert_f8e4m3_to_f32(0x7E), 448.0f);       // the largest
  EXPECT_EQ(moert_f8e4m3_to_f32(0x08), 0.015625f);    // 2^-6, smallest normal
  EXPECT_EQ(moert_f8e4m3_to_f32(0x01), 0.001953125f); // 2^-9, subnormal
  EXPECT_EQ(moert_f8e4m3_to_f32(0x07), 7 * 0.001953125f);
  EXPECT_EQ(moert_f8e4m3_to_f32(0x00), 0.0f);
  EXPECT_TRUE(std::signbit(moert_f8e4m3_to_f32(0x80)));
  EXPECT_TRUE(std::isnan(moert_f8e4m3_to_f32(0x7F)));
  EXPECT_TRUE(std::isnan(moert_f8e4m3_to_f32(0xFF)));
  // Every other byte is finite, and the 127 positive ones increase.
  for (int v = 1; v < 0x7F; ++v)
    ASSERT_LT(moert_f8e4m3_to_f32(uint8_t(v - 1)),
              moert_f8e4m3_to_f32(uint8_t(v)))
        << v;
  // E5M2: the high byte of a half.
  EXPECT_EQ(moert_f8e5m2_to_f32(0x3C), 1.0f);
  EXPECT_EQ(moert_f8e5m2_to_f32(0x7B), 57344.0f);
  EXPECT_EQ(moert_f8e5m2_to_f32(0x7C), INFINITY);
  EXPECT_TRUE(std::isnan(moert_f8e5m2_to_f32(0x7F)));
  // Bulk: from FP8 to the float types, not into FP8.
  uint8_t in[3] = {0x38, 0xC4, 0x7E};
  uint16_t out[3];
  ASSERT_EQ(moert_convert(in, MOERT_F8_E4M3, out, MOERT_BF16, 3), MOERT_OK);
  EXPECT_EQ(out[0], 0x3F80);
  EXPECT_EQ(out[1], 0xC040);
  EXPECT_EQ(out[2], 0x43E0);
  EXPECT_EQ(moert_convert(out, MOERT_BF16, in, MOERT_F8_E4M3, 3),
            MOERT_ERR_UNSUPPORTED);
  EXPECT_NE(std::string(moert_last_error()).find("BF16 to F8_E4M3"),
            std::string::npos);
  moert_dtype t;
  ASSERT_EQ(moert_dtype_from_name("F8_E4M3", &t), MOERT_OK);
  EXPECT_EQ(t, MOERT_F8_E4M3);
  EXPECT_EQ(moert_dtype_size(MOERT_F8_E5M2), 1u);
}

TEST(MemoryTest, AlignedAndFailsWithTheSize) {
  void *p = nullptr;
  ASSERT_EQ(moert_alloc(100, &p), MOERT_OK);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 64, 0u);
  moert_free(p);
  EXPECT_EQ(moert_alloc(SIZE_MAX - 10, &p), MOERT_ERR_OUT_OF_MEMORY);
  EXPECT_NE(std::string(moert_last_error()).find("18446744073709551605"),
            std::string::npos);
}

} // namespace

namespace {
TEST(CudaTest, InitReportsWhyThereIsNoGpuOrSucceeds) {
  moert_status s = moert_cuda_init();
  if (s == MOERT_OK) {
    char name[256] = "";
    ASSERT_EQ(moert_cuda_device_name(name, sizeof(name)), MOERT_OK);
    EXPECT_GT(std::strlen(name), 0u);
    return;
  }
  EXPECT_EQ(s, MOERT_ERR_DEVICE);
  std::string why = moert_last_error();
  EXPECT_TRUE(why.find("no CUDA driver on this machine") != std::string::npos ||
              why.find("found no GPU") != std::string::npos)
      << why;
  // Every other entry point gives the same reason instead of crashing.
  void *p = nullptr;
  EXPECT_EQ(moert_cuda_alloc(16, &p), MOERT_ERR_DEVICE);
  EXPECT_EQ(p, nullptr);
  EXPECT_EQ(std::string(moert_last_error()), why);
}

TEST(CudaTest, DeviceMemoryRoundTripAndOutOfMemoryMessage) {
  if (moert_cuda_init() != MOERT_OK)
    GTEST_SKIP() << moert_last_error();
  std::vector<float> in(1 << 20), out(1 << 20, -1.0f);
  for (size_t i = 0; i < in.size(); ++i)
    in[i] = float(i % 977) * 0.5f;
  void *d = nullptr;
  ASSERT_EQ(moert_cuda_alloc(in.size() * 4, &d), MOERT_OK) << moert_last_error();
  ASSERT_EQ(moert_cuda_copy(d, in.data(), in.size() * 4), MOERT_OK);
  ASSERT_EQ(moert_cuda_copy(out.data(), d, out.size() * 4), MOERT_OK);
  EXPECT_EQ(in, out);
  EXPECT_EQ(moert_cuda_free(d), MOERT_OK);
  // More than any GPU has: the message names the bytes asked and free.
  void *huge = nullptr;
  EXPECT_EQ(moert_cuda_alloc(size_t(1) << 50, &huge), MOERT_ERR_OUT_OF_MEMORY);
  std::string why = moert_last_error();
  EXPECT_NE(why.find("cuMemAlloc of 1125899906842624 bytes failed"),
            std::string::npos)
      << why;
  EXPECT_NE(why.find("bytes of device memory free"), std::string::npos) << why;
}

TEST(CudaTest, TensorMapsAreMadeOnceAndInDeviceMemory) {
  if (moert_cuda_init() != MOERT_OK)
    GTEST_SKIP() << moert_last_error();
  void *w = nullptr;
  ASSERT_EQ(moert_cuda_alloc(size_t(4) * 128 * 256 * 2, &w), MOERT_OK);
  uint64_t base = reinterpret_cast<uint64_t>(w);
  uint64_t a = moert_cuda_tensor_map_bf16(base, 256, 128, 4, 64, 64);
  ASSERT_NE(a, 0u);
  EXPECT_EQ(a % 64, 0u); // a CUtensorMap's alignment
  // The same tensor and box: the same map; another box: another.
  EXPECT_EQ(moert_cuda_tensor_map_bf16(base, 256, 128, 4, 64, 64), a);
  uint64_t b = moert_cuda_tensor_map_bf16(base, 256, 128, 4, 64, 32);
  EXPECT_NE(b, a);
  // Both hold an encoded map (128 bytes, not all zero), and not the same.
  std::vector<uint64_t> ma(16, 0), mb(16, 0);
  ASSERT_EQ(moert_cuda_copy(ma.data(), reinterpret_cast<void *>(a), 128),
            MOERT_OK);
  ASSERT_EQ(moert_cuda_copy(mb.data(), reinterpret_cast<void *>(b), 128),
            MOERT_OK);
  EXPECT_NE(ma, std::vector<uint64_t>(16, 0));
  EXPECT_NE(ma, mb);
  EXPECT_EQ(moert_cuda_free(w), MOERT_OK);
}
} // namespace

extern "C" void mgpuMemcpy(void *dst, void *src, size_t bytes, void *stream);

namespace {
TEST(CudaTest, GraphReplaysItsCopiesFromPageLockedInputsWhenLaunched) {
  if (moert_cuda_init() != MOERT_OK)
    GTEST_SKIP() << moert_last_error();
  const size_t n = 4096;
  int32_t *host = nullptr;
  ASSERT_EQ(moert_cuda_host_alloc(n * 4, reinterpret_cast<void **>(&host)),
            MOERT_OK)
      << moert_last_error();
  void *d = nullptr, *stream = nullptr;
  ASSERT_EQ(moert_cuda_alloc(n * 4, &d), MOERT_OK);
  ASSERT_EQ(moert_cuda_stream(&stream), MOERT_OK);
  std::vector<int32_t> poison(n, -1), out(n, 0);
  ASSERT_EQ(moert_cuda_copy(d, poison.data(), n * 4), MOERT_OK);
  // Ending a capture that never began is an error, not a crash.
  moert_cuda_graph *graph = nullptr;
  EXPECT_NE(moert_cuda_capture_end(&graph), MOERT_OK);
  EXPECT_EQ(graph, nullptr);
  EXPECT_NE(std::string(moert_last_error()).find("cuStreamEndCapture"),
            std::string::npos)
      << moert_last_error();
  // Captured: the copy is recorded, not run.
  ASSERT_EQ(moert_cuda_capture_begin(), MOERT_OK) << moert_last_error();
  mgpuMemcpy(d, host, n * 4, stream);
  ASSERT_EQ(moert_cuda_capture_end(&graph), MOERT_OK) << moert_last_error();
  ASSERT_NE(graph, nullptr);
  ASSERT_EQ(moert_cuda_synchronize(), MOERT_OK);
  ASSERT_EQ(moert_cuda_copy(out.data(), d, n * 4), MOERT_OK);
  EXPECT_EQ(out, poison);
  // Each launch copies what the host buffer holds then.
  std::mt19937 rng(std::random_device{}());
  for (int round = 0; round < 3; ++round) {
    for (size_t i = 0; i < n; ++i)
      host[i] = int32_t(rng());
    ASSERT_EQ(moert_cuda_graph_launch(graph), MOERT_OK) << moert_last_error();
    ASSERT_EQ(moert_cuda_synchronize(), MOERT_OK);
    ASSERT_EQ(moert_cuda_copy(out.data(), d, n * 4), MOERT_OK);
    EXPECT_EQ(out, std::vector<int32_t>(host, host + n)) << "round " << round;
  }
  moert_cuda_graph_destroy(graph);
  EXPECT_EQ(moert_cuda_free(d), MOERT_OK);
  EXPECT_EQ(moert_cuda_host_free(host), MOERT_OK);
}
} // namespace
