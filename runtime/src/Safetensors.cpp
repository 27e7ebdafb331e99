//===- Safetensors.cpp - Validating safetensors reader and atomic writer ---===//
//
// Part of moe-compiler's runtime.
//
// The header is parsed by a small strict JSON parser and every entry is
// checked before any tensor data is handed out: a truncated download or a
// corrupt file must end in a message naming the tensor, never in a read past
// the mapping.
//
//===----------------------------------------------------------------------===//

#include "Internal.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <string>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <unordered_map>
#include <vector>

namespace {

//===----------------------------------------------------------------------===//
// JSON
//===----------------------------------------------------------------------===//

struct Json {
  enum Kind { Null, Bool, Number, String, Array, Object } kind = Null;
  std::string text; // string value, or the number's spelling
  bool isInteger = false;
  std::vector<Json> items;                           // Array
  std::vector<std::pair<std::string, Json>> members; // Object
};

class JsonParser {
public:
  JsonParser(const char *begin, const char *end) : p(begin), end(end) {}

  bool parseDocument(Json &out) {
    skipSpace();
    if (!parseValue(out, 0))
      return false;
    skipSpace();
    if (p != end)
      return error("unexpected characters after the header object");
    return true;
  }

  std::string message;
  size_t offset(const char *base) const { return size_t(p - base); }

private:
  const char *p, *end;

  bool error(const char *what) {
    if (message.empty())
      message = what;
    return false;
  }
  void skipSpace() {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
      ++p;
  }
  bool literal(const char *word) {
    size_t n = std::strlen(word);
    if (size_t(end - p) < n || std::memcmp(p, word, n) != 0)
      return error("invalid literal");
    p += n;
    return true;
  }

  bool parseValue(Json &out, int depth) {
    if (depth > 64)
      return error("JSON nested too deeply");
    if (p >= end)
      return error("unexpected end of the header");
    switch (*p) {
    case '{':
      return parseObject(out, depth);
    case '[':
      return parseArray(out, depth);
    case '"':
      out.kind = Json::String;
      return parseString(out.text);
    case 't':
      out.kind = Json::Bool;
      out.text = "true";
      return literal("true");
    case 'f':
      out.kind = Json::Bool;
      out.text = "false";
      return literal("false");
    case 'n':
      out.kind = Json::Null;
      return literal("null");
    default:
      return parseNumber(out);
    }
  }

  bool parseObject(Json &out, int depth) {
    out.kind = Json::Object;
    ++p; // '{'
    skipSpace();
    if (p < end && *p == '}') {
      ++p;
      return true;
    }
    while (true) {
      skipSpace();
      if (p >= end || *p != '"')
        return error("expected a string key in an object");
      std::string key;
      if (!parseString(key))
        return false;
      skipSpace();
      if (p >= end || *p != ':')
        return error("expected ':' after an object key");
      ++p;
      skipSpace();
      Json value;
      if (!parseValue(value, depth + 1))
        return false;
      out.members.emplace_back(std::move(key), std::move(value));
      skipSpace();
      if (p < end && *p == ',') {
        ++p;
        continue;
      }
      if (p < end && *p == '}') {
        ++p;
        return true;
      }
      return error("expected ',' or '}' in an object");
    }
  }

  bool parseArray(Json &out, int depth) {
    out.kind = Json::Array;
    ++p; // '['
    skipSpace();
    if (p < end && *p == ']') {
      ++p;
      return true;
    }
    while (true) {
      skipSpace();
      Json value;
      if (!parseValue(value, depth + 1))
        return false;
      out.items.push_back(std::move(value));
      skipSpace();
      if (p < end && *p == ',') {
        ++p;
        continue;
      }
      if (p < end && *p == ']') {
        ++p;
        return true;
      }
      return error("expected ',' or ']' in an array");
    }
  }

  static void appendUtf8(std::string &s, uint32_t cp) {
    if (cp < 0x80) {
      s += char(cp);
    } else if (cp < 0x800) {
      s += char(0xC0 | (cp >> 6));
      s += char(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      s += char(0xE0 | (cp >> 12));
      s += char(0x80 | ((cp >> 6) & 0x3F));
      s += char(0x80 | (cp & 0x3F));
    } else {
      s += char(0xF0 | (cp >> 18));
      s += char(0x80 | ((cp >> 12) & 0x3F));
      s += char(0x80 | ((cp >> 6) & 0x3F));
      s += char(0x80 | (cp & 0x3F));
    }
  }

  bool hex4(uint32_t &out) {
    if (end - p < 4)
      return error("truncated \\u escape");
    out = 0;
    for (int i = 0; i < 4; ++i, ++p) {
      char c = *p;
      out <<= 4;
      if (c >= '0' && c <= '9')
        out |= uint32_t(c - '0');
      else if (c >= 'a' && c <= 'f')
        out |= uint32_t(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F')
        out |= uint32_t(c - 'A' + 10);
      else
        return error("invalid \\u escape");
    }
    return true;
  }

  bool parseString(std::string &out) {
    ++p; // '"'
    while (true) {
      if (p >= end)
        return error("unterminated string");
      char c = *p++;
      if (c == '"')
        return true;
      if (static_cast<unsigned char>(c) < 0x20)
        return error("control character in a string");
      if (c != '\\') {
        out += c;
        continue;
      }
      if (p >= end)
        return error("unterminated string");
      char e = *p++;
      switch (e) {
      case '"':
      case '\\':
      case '/':
        out += e;
        break;
      case 'b':
        out += '\b';
        break;
      case 'f':
        out += '\f';
        break;
      case 'n':
        out += '\n';
        break;
      case 'r':
        out += '\r';
        break;
      case 't':
        out += '\t';
        break;
      case 'u': {
        uint32_t cp;
        if (!hex4(cp))
          return false;
        if (cp >= 0xD800 && cp < 0xDC00) { // surrogate pair
          uint32_t low;
          if (end - p < 2 || p[0] != '\\' || p[1] != 'u')
            return error("unpaired surrogate in a \\u escape");
          p += 2;
          if (!hex4(low) || low < 0xDC00 || low >= 0xE000)
            return error("unpaired surrogate in a \\u escape");
          cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
        } else if (cp >= 0xDC00 && cp < 0xE000) {
          return error("unpaired surrogate in a \\u escape");
        }
        appendUtf8(out, cp);
        break;
      }
      default:
        return error("invalid escape in a string");
      }
    }
  }

  bool parseNumber(Json &out) {
    const char *start = p;
    if (p < end && *p == '-')
      ++p;
    if (p >= end || !(*p >= '0' && *p <= '9'))
      return error("invalid value");
    if (*p == '0')
      ++p;
    else
      while (p < end && *p >= '0' && *p <= '9')
        ++p;
    bool integer = true;
    if (p < end && *p == '.') {
      integer = false;
      ++p;
      if (p >= end || !(*p >= '0' && *p <= '9'))
        return error("invalid number");
      while (p < end && *p >= '0' && *p <= '9')
        ++p;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
      integer = false;
      ++p;
      if (p < end && (*p == '+' || *p == '-'))
        ++p;
      if (p >= end || !(*p >= '0' && *p <= '9'))
        return error("invalid number");
      while (p < end && *p >= '0' && *p <= '9')
        ++p;
    }
    out.kind = Json::Number;
    out.isInteger = integer;
    out.text.assign(start, p);
    return true;
  }
};

/// Parses a non-negative JSON integer that fits in uint64_t.
bool toU64(const Json &j, uint64_t &out) {
  if (j.kind != Json::Number || !j.isInteger || j.text[0] == '-')
    return false;
  uint64_t v = 0;
  for (char c : j.text) {
    uint64_t d = uint64_t(c - '0');
    if (v > (UINT64_MAX - d) / 10)
      return false;
    v = v * 10 + d;
  }
  out = v;
  return true;
}

} // namespace

//===----------------------------------------------------------------------===//
// Reading
//===----------------------------------------------------------------------===//

struct moert_st_file {
  std::string name;
  const uint8_t *base = nullptr; // whole file
  size_t size = 0;
  bool mapped = false;
  std::vector<moert_st_tensor> tensors;
  std::vector<std::string> names; // storage for tensors[i].name
  std::unordered_map<std::string, size_t> index;
  std::vector<std::pair<std::string, std::string>> metadata;
};

namespace {
const uint64_t kMaxHeader = 100u * 1024 * 1024;

moert_status formatError(const moert_st_file &f, const char *what) {
  return moert::fail(MOERT_ERR_FORMAT, "safetensors '%s': %s", f.name.c_str(),
                     what);
}

moert_status tensorError(const moert_st_file &f, const std::string &tensor,
                         const std::string &what) {
  return moert::fail(MOERT_ERR_FORMAT, "safetensors '%s': tensor '%s': %s",
                     f.name.c_str(), tensor.c_str(), what.c_str());
}

moert_status parseHeader(moert_st_file &f) {
  if (f.size < 8)
    return formatError(f, (std::to_string(f.size) +
                           "-byte file is too short for the 8-byte header "
                           "length")
                              .c_str());
  uint64_t headerLen = 0;
  for (int i = 7; i >= 0; --i)
    headerLen = (headerLen << 8) | f.base[i];
  if (headerLen > kMaxHeader)
    return formatError(f, ("header length " + std::to_string(headerLen) +
                           " exceeds the 100 MB limit")
                              .c_str());
  if (headerLen > f.size - 8)
    return formatError(f, ("header length " + std::to_string(headerLen) +
                           " runs past the end of the file (" +
                           std::to_string(f.size) + " bytes)")
                              .c_str());
  const char *json = reinterpret_cast<const char *>(f.base + 8);
  JsonParser parser(json, json + headerLen);
  Json root;
  if (!parser.parseDocument(root))
    return formatError(f, ("invalid JSON header at byte " +
                           std::to_string(parser.offset(json)) + ": " +
                           parser.message)
                              .c_str());
  if (root.kind != Json::Object)
    return formatError(f, "the header is not a JSON object");

  uint64_t dataSize = f.size - 8 - headerLen;
  const uint8_t *data = f.base + 8 + headerLen;
  struct Range {
    uint64_t begin, end;
    size_t tensor;
  };
  std::vector<Range> ranges;
  for (auto &[name, entry] : root.members) {
    if (name == "__metadata__") {
      if (entry.kind != Json::Object)
        return formatError(f, "__metadata__ is not an object");
      for (auto &[k, v] : entry.members) {
        if (v.kind != Json::String)
          return formatError(
              f, ("__metadata__ value of '" + k + "' is not a string").c_str());
        f.metadata.emplace_back(k, v.text);
      }
      continue;
    }
    if (name.empty())
      return formatError(f, "a tensor has an empty name");
    if (f.index.count(name))
      return tensorError(f, name, "the name appears twice");
    if (entry.kind != Json::Object)
      return tensorError(f, name, "the entry is not an object");
    const Json *dtype = nullptr, *shape = nullptr, *offsets = nullptr;
    for (auto &[k, v] : entry.members) {
      if (k == "dtype")
        dtype = &v;
      else if (k == "shape")
        shape = &v;
      else if (k == "data_offsets")
        offsets = &v;
      else
        return tensorError(f, name, "unknown key '" + k + "'");
    }
    if (!dtype || dtype->kind != Json::String)
      return tensorError(f, name, "missing or non-string 'dtype'");
    if (!shape || shape->kind != Json::Array)
      return tensorError(f, name, "missing or non-array 'shape'");
    if (!offsets || offsets->kind != Json::Array || offsets->items.size() != 2)
      return tensorError(f, name,
                         "'data_offsets' must be an array [begin, end]");
    moert_st_tensor t{};
    if (moert_dtype_from_name(dtype->text.c_str(), &t.dtype) != MOERT_OK)
      return tensorError(f, name, "unknown dtype '" + dtype->text + "'");
    if (shape->items.size() > 8)
      return tensorError(f, name,
                         "rank " + std::to_string(shape->items.size()) +
                             " exceeds the supported 8");
    t.rank = int32_t(shape->items.size());
    uint64_t elements = 1;
    for (size_t i = 0; i < shape->items.size(); ++i) {
      uint64_t d;
      if (!toU64(shape->items[i], d) || d > uint64_t(INT64_MAX))
        return tensorError(f, name,
                           "shape entry " + std::to_string(i) +
                               " is not a non-negative integer");
      t.shape[i] = int64_t(d);
      if (d != 0 && elements > UINT64_MAX / d)
        return tensorError(f, name, "the element count overflows");
      elements *= d;
    }
    uint64_t elemSize = moert_dtype_size(t.dtype);
    if (elements > UINT64_MAX / elemSize)
      return tensorError(f, name, "the byte size overflows");
    uint64_t bytes = elements * elemSize;
    uint64_t begin, end;
    if (!toU64(offsets->items[0], begin) || !toU64(offsets->items[1], end))
      return tensorError(f, name,
                         "data offsets must be non-negative integers");
    if (begin > end)
      return tensorError(f, name,
                         "data offsets [" + std::to_string(begin) + ", " +
                             std::to_string(end) + ") begin after they end");
    if (end > dataSize)
      return tensorError(f, name,
                         "data offsets [" + std::to_string(begin) + ", " +
                             std::to_string(end) +
                             ") end past the data section (" +
                             std::to_string(dataSize) +
                             " bytes; the file may be truncated)");
    if (end - begin != bytes)
      return tensorError(f, name,
                         "shape and dtype need " + std::to_string(bytes) +
                             " bytes but the data offsets span " +
                             std::to_string(end - begin));
    t.data = data + begin;
    t.nbytes = size_t(bytes);
    f.index[name] = f.tensors.size();
    f.names.push_back(name);
    f.tensors.push_back(t);
    if (bytes)
      ranges.push_back({begin, end, f.tensors.size() - 1});
  }
  for (size_t i = 0; i < f.tensors.size(); ++i)
    f.tensors[i].name = f.names[i].c_str();
  std::sort(ranges.begin(), ranges.end(),
            [](const Range &a, const Range &b) { return a.begin < b.begin; });
  for (size_t i = 1; i < ranges.size(); ++i)
    if (ranges[i].begin < ranges[i - 1].end)
      return tensorError(f, f.names[ranges[i].tensor],
                         "its data overlaps tensor '" +
                             f.names[ranges[i - 1].tensor] + "'");
  return MOERT_OK;
}
} // namespace

extern "C" moert_status moert_st_open_memory(const void *data, size_t size,
                                             const char *name,
                                             moert_st_file **out) {
  *out = nullptr;
  auto f = new moert_st_file();
  f->name = name ? name : "<memory>";
  f->base = static_cast<const uint8_t *>(data);
  f->size = size;
  if (moert_status s = parseHeader(*f); s != MOERT_OK) {
    delete f;
    return s;
  }
  *out = f;
  return MOERT_OK;
}

extern "C" moert_status moert_st_open(const char *path, moert_st_file **out) {
  *out = nullptr;
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return moert::fail(MOERT_ERR_IO, "cannot open safetensors '%s': %s", path,
                       std::strerror(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return moert::fail(MOERT_ERR_IO, "safetensors '%s' is not a regular file",
                       path);
  }
  size_t size = size_t(st.st_size);
  void *base = nullptr;
  if (size > 0) {
    base = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (base == MAP_FAILED) {
      int err = errno;
      ::close(fd);
      return moert::fail(MOERT_ERR_IO, "cannot map safetensors '%s': %s",
                         path, std::strerror(err));
    }
  }
  ::close(fd);
  auto f = new moert_st_file();
  f->name = path;
  f->base = static_cast<const uint8_t *>(base);
  f->size = size;
  f->mapped = size > 0;
  if (moert_status s = parseHeader(*f); s != MOERT_OK) {
    moert_st_close(f);
    return s;
  }
  *out = f;
  return MOERT_OK;
}

extern "C" void moert_st_close(moert_st_file *f) {
  if (!f)
    return;
  if (f->mapped)
    ::munmap(const_cast<uint8_t *>(f->base), f->size);
  delete f;
}

extern "C" size_t moert_st_count(const moert_st_file *f) {
  return f->tensors.size();
}

extern "C" moert_status moert_st_info(const moert_st_file *f, size_t i,
                                      moert_st_tensor *out) {
  if (i >= f->tensors.size())
    return moert::fail(MOERT_ERR_INVALID_ARGUMENT,
                       "safetensors '%s' has %zu tensors, asked for #%zu",
                       f->name.c_str(), f->tensors.size(), i);
  *out = f->tensors[i];
  return MOERT_OK;
}

extern "C" moert_status moert_st_find(const moert_st_file *f, const char *name,
                                      moert_st_tensor *out) {
  auto it = f->index.find(name);
  if (it == f->index.end())
    return moert::fail(MOERT_ERR_NOT_FOUND,
                       "safetensors '%s': tensor '%s' is missing",
                       f->name.c_str(), name);
  *out = f->tensors[it->second];
  return MOERT_OK;
}

namespace {
std::string shapeString(int32_t rank, const int64_t *shape) {
  std::string s = "[";
  for (int32_t i = 0; i < rank; ++i)
    s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}
} // namespace

extern "C" moert_status moert_st_expect(const moert_st_file *f,
                                        const char *name, moert_dtype dtype,
                                        int32_t rank, const int64_t *shape,
                                        moert_st_tensor *out) {
  moert_st_tensor t;
  if (moert_status s = moert_st_find(f, name, &t); s != MOERT_OK)
    return s;
  if (t.dtype != dtype)
    return moert::fail(MOERT_ERR_INVALID_ARGUMENT,
                       "safetensors '%s': tensor '%s' has dtype %s but the "
                       "model needs %s",
                       f->name.c_str(), name, moert_dtype_name(t.dtype),
                       moert_dtype_name(dtype));
  if (t.rank != rank || !std::equal(shape, shape + rank, t.shape))
    return moert::fail(
        MOERT_ERR_INVALID_ARGUMENT,
        "safetensors '%s': tensor '%s' has shape %s but the model needs %s",
        f->name.c_str(), name, shapeString(t.rank, t.shape).c_str(),
        shapeString(rank, shape).c_str());
  if (out)
    *out = t;
  return MOERT_OK;
}

extern "C" const char *moert_st_metadata(const moert_st_file *f,
                                         const char *key) {
  for (auto &[k, v] : f->metadata)
    if (k == key)
      return v.c_str();
  return nullptr;
}

//===----------------------------------------------------------------------===//
// Writing
//===----------------------------------------------------------------------===//

namespace {
void appendJsonString(std::string &out, const char *s) {
  out += '"';
  for (; *s; ++s) {
    unsigned char c = static_cast<unsigned char>(*s);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += char(c);
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\u%04x", c);
      out += buf;
    } else {
      out += char(c);
    }
  }
  out += '"';
}

bool writeAll(int fd, const void *data, size_t n) {
  const char *p = static_cast<const char *>(data);
  while (n) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      return false;
    }
    p += w;
    n -= size_t(w);
  }
  return true;
}
} // namespace

extern "C" moert_status moert_st_write(const char *path, size_t n,
                                       const moert_st_tensor *tensors) {
  std::string header = "{";
  uint64_t offset = 0;
  std::unordered_map<std::string, int> seen;
  for (size_t i = 0; i < n; ++i) {
    const moert_st_tensor &t = tensors[i];
    if (!t.name || !*t.name)
      return moert::fail(MOERT_ERR_INVALID_ARGUMENT,
                         "writing '%s': tensor #%zu has no name", path, i);
    if (seen[t.name]++)
      return moert::fail(MOERT_ERR_INVALID_ARGUMENT,
                         "writing '%s': tensor name '%s' appears twice", path,
                         t.name);
    if (t.rank < 0 || t.rank > 8)
      return moert::fail(MOERT_ERR_INVALID_ARGUMENT,
                         "writing '%s': tensor '%s' has rank %d", path, t.name,
                         t.rank);
    uint64_t elements = 1;
    for (int32_t d = 0; d < t.rank; ++d)
      elements *= uint64_t(t.shape[d]);
    if (elements * moert_dtype_size(t.dtype) != t.nbytes)
      return moert::fail(MOERT_ERR_INVALID_ARGUMENT,
                         "writing '%s': tensor '%s' has %zu bytes, its shape "
                         "and dtype need %llu",
                         path, t.name, t.nbytes,
                         (unsigned long long)(elements *
                                              moert_dtype_size(t.dtype)));
    if (i)
      header += ',';
    appendJsonString(header, t.name);
    header += ":{\"dtype\":\"";
    header += moert_dtype_name(t.dtype);
    header += "\",\"shape\":[";
    for (int32_t d = 0; d < t.rank; ++d)
      header += (d ? "," : "") + std::to_string(t.shape[d]);
    header += "],\"data_offsets\":[" + std::to_string(offset) + "," +
              std::to_string(offset + t.nbytes) + "]}";
    offset += t.nbytes;
  }
  header += '}';
  while (header.size() % 8)
    header += ' ';

  std::string tmp = std::string(path) + ".tmp." + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    return moert::fail(MOERT_ERR_IO, "cannot write '%s': %s", path,
                       std::strerror(errno));
  uint8_t len[8];
  uint64_t h = header.size();
  for (int i = 0; i < 8; ++i)
    len[i] = uint8_t(h >> (8 * i));
  bool ok = writeAll(fd, len, 8) && writeAll(fd, header.data(), header.size());
  for (size_t i = 0; ok && i < n; ++i)
    ok = writeAll(fd, tensors[i].data, tensors[i].nbytes);
  int err = errno;
  ok = (::close(fd) == 0) && ok;
  if (!ok || ::rename(tmp.c_str(), path) != 0) {
    if (ok)
      err = errno;
    ::unlink(tmp.c_str());
    return moert::fail(MOERT_ERR_IO, "cannot write '%s': %s", path,
                       std::strerror(err));
  }
  return MOERT_OK;
}
