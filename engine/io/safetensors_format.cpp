// safetensors header parsing and validation on a byte span, and entry decoding (F16 -> F32).
#include "engine/io/safetensors_format.h"
#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>
#include <set>
#include <string_view>
#include <nlohmann/json.hpp>
#include "engine/error.h"
#include "core/layout.h"

namespace retort {

static_assert(std::endian::native == std::endian::little, "safetensors I/O assumes a little-endian host");

namespace {

// std::map-backed JSON: ordered_json's linear-time key lookup makes parsing a header with many
// entries quadratic (200k entries took 80 s); the header order is recorded while parsing.
using ojson = nlohmann::json;
constexpr const char* kMetadataKey = "__metadata__";
constexpr size_t kMaxDimsLoaded = size_t(kMaxDims);  // retort's tensors hold at most this many dims

// A name as it appears in a message: long (hostile) names are cut.
std::string shown(const std::string& name) {
  constexpr size_t kMax = 120;
  if (name.size() <= kMax) return name;
  return fmt::format("{}... ({} bytes)", name.substr(0, kMax), name.size());
}

// The part of nlohmann's parse error after its own "line, column" prefix.
std::string json_error_detail(const char* what) {
  std::string w = what;
  auto p = w.find("column");
  if (p != std::string::npos) p = w.find(": ", p);
  std::string detail = p == std::string::npos ? w : w.substr(p + 2);
  return detail.size() > 300 ? detail.substr(0, 300) + "..." : detail;
}

// A shape for a message, without dumping arbitrary (possibly deeply nested) JSON.
std::string shape_text(const ojson& shape) {
  std::string out = "[";
  size_t i = 0;
  for (const auto& d : shape) {
    if (i) out += ", ";
    if (i++ == 10) return out + "...]";
    if (d.is_number_integer()) out += d.dump();
    else out += fmt::format("<{}>", d.type_name());
  }
  return out + "]";
}
std::string shape_text(const Shape& s) { return fmt::format("[{}]", fmt::join(s, ", ")); }

struct Known {
  const char* name;
  SafetensorsDType file;
  DType loaded;
  size_t size;
};
constexpr Known kLoadable[] = {
    {"F64", SafetensorsDType::F64, DType::f64, 8}, {"F32", SafetensorsDType::F32, DType::f32, 4},
    {"F16", SafetensorsDType::F16, DType::f32, 2}, {"BF16", SafetensorsDType::BF16, DType::bf16, 2},
    {"I64", SafetensorsDType::I64, DType::i64, 8}, {"U8", SafetensorsDType::U8, DType::u8, 1},
};
constexpr const char* kValidNotLoaded[] = {"BOOL", "I8",   "I16",      "I32",      "U16",      "U32",
                                           "U64",  "F8_E4M3", "F8_E5M2", "F8_E8M0", "F4", "F6_E2M3", "F6_E3M2"};

class Validator {
 public:
  Validator(const unsigned char* bytes, size_t size, const std::string& label)
      : bytes_(bytes), size_(size), label_(label) {}

  template <typename... Args>
  [[noreturn]] void corrupt(uint64_t byte, fmt::format_string<Args...> f, Args&&... args) const {
    fail("{}: byte {}: {}", label_, byte, fmt::format(f, std::forward<Args>(args)...));
  }

  SafetensorsIndex run() {
    SafetensorsIndex index;
    index.file_size = size_;
    if (size_ < 8) corrupt(0, "the file is {} bytes, shorter than the 8-byte header length", size_);
    uint64_t header_len = 0;
    std::memcpy(&header_len, bytes_, 8);
    if (header_len > kSafetensorsMaxHeaderBytes)
      corrupt(0, "header length {} is over the {} byte limit (the reference implementation's)", header_len,
              kSafetensorsMaxHeaderBytes);
    if (header_len > size_ - 8)
      corrupt(0, "header length {} is larger than the {} bytes that follow it (file size {})", header_len, size_ - 8,
              size_);
    text_ = std::string_view(reinterpret_cast<const char*>(bytes_) + 8, size_t(header_len));
    index.data_start = 8 + header_len;
    data_size_ = size_ - index.data_start;

    ojson header = parse_header();
    index.entries.reserve(key_order_.size());
    for (const std::string& name : key_order_) {
      const ojson& spec = header.at(name);
      if (name == kMetadataKey) read_metadata(spec, index.metadata);
      else index.entries.push_back(read_entry(name, spec, index.data_start));
    }
    check_tiling(index);
    return index;
  }

 private:
  // Where a key first appears in the header text (the byte reported for that entry).
  uint64_t key_byte(const std::string& key) const {
    std::string quoted;
    try {
      quoted = ojson(key).dump();
    } catch (const nlohmann::json::exception&) {
      return 8;
    }
    auto p = text_.find(quoted);
    return 8 + (p == std::string_view::npos ? 0 : p);
  }

  // Records the top-level keys in order and stops at the first repeated one, without building
  // anything (nlohmann's callback parser rescans the parent object after every nested object,
  // which is quadratic in the number of entries).
  struct TopLevelKeys {
    std::vector<std::string>& order;
    std::set<std::string> seen;
    std::string duplicate;
    int depth = 0;
    bool null() { return true; }
    bool boolean(bool) { return true; }
    bool number_integer(ojson::number_integer_t) { return true; }
    bool number_unsigned(ojson::number_unsigned_t) { return true; }
    bool number_float(ojson::number_float_t, const std::string&) { return true; }
    bool string(std::string&) { return true; }
    bool binary(ojson::binary_t&) { return true; }
    bool start_object(std::size_t) { return ++depth, true; }
    bool end_object() { return --depth, true; }
    bool start_array(std::size_t) { return ++depth, true; }
    bool end_array() { return --depth, true; }
    bool key(std::string& k) {
      if (depth != 1) return true;
      if (!seen.insert(k).second) {
        duplicate = k;
        return false;
      }
      order.push_back(k);
      return true;
    }
    bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) { return false; }
  };

  ojson parse_header() {
    // Pass 1: header order and unique top-level keys (a JSON object with a repeated key would
    // silently keep one). Pass 2: the document itself, which also reports any syntax error.
    TopLevelKeys keys{key_order_, {}, {}, 0};
    ojson::sax_parse(text_.begin(), text_.end(), &keys);
    if (!keys.duplicate.empty()) {
      std::string quoted = ojson(keys.duplicate).dump();
      auto first = text_.find(quoted);
      auto second = first == std::string_view::npos ? first : text_.find(quoted, first + 1);
      corrupt(8 + (second == std::string_view::npos ? 0 : second), "the name '{}' appears twice in the header",
              shown(keys.duplicate));
    }
    ojson header;
    try {
      header = ojson::parse(text_.begin(), text_.end());
    } catch (const nlohmann::json::parse_error& e) {
      uint64_t pos = e.byte > 0 ? uint64_t(e.byte) - 1 : 0;
      corrupt(8 + std::min<uint64_t>(pos, text_.size()), "header is not valid JSON: {}", json_error_detail(e.what()));
    } catch (const nlohmann::json::exception& e) {  // e.g. out_of_range 406: a number too large for a double
      corrupt(8, "header is not valid JSON: {}", json_error_detail(e.what()));
    }
    if (!header.is_object()) corrupt(8, "header is a JSON {}, not an object", header.type_name());
    if (key_order_.size() != header.size())  // cannot happen for a valid object; never trust it blindly
      corrupt(8, "header keys could not be read in order ({} found, {} parsed)", key_order_.size(), header.size());
    return header;
  }

  void read_metadata(const ojson& spec, StringMap& out) const {
    if (spec.is_null()) return;  // the reference accepts "__metadata__": null (no metadata)
    if (!spec.is_object())
      corrupt(key_byte(kMetadataKey), "\"__metadata__\" must be an object of strings, got a {}", spec.type_name());
    for (const auto& [k, v] : spec.items()) {
      if (!v.is_string())
        corrupt(key_byte(k), "metadata value of '{}' must be a string, got a {}", shown(k), v.type_name());
      out[k] = v.get<std::string>();
    }
  }

  SafetensorsEntry read_entry(const std::string& name, const ojson& spec, uint64_t data_start) const {
    SafetensorsEntry e;
    e.name = name;
    const std::string who = shown(name);
    auto at = [&] { return key_byte(name); };
    if (!spec.is_object()) corrupt(at(), "tensor '{}': entry must be an object, got a {}", who, spec.type_name());
    auto dtype_it = spec.find("dtype");
    if (dtype_it == spec.end() || !dtype_it->is_string())
      corrupt(at(), "tensor '{}': missing or non-string \"dtype\"", who);
    const std::string dt = dtype_it->get<std::string>();
    size_t dsize = 0;
    bool known = false;
    for (const auto& k : kLoadable)
      if (dt == k.name) e.file_dtype = k.file, e.dtype = k.loaded, dsize = k.size, known = true;
    if (!known) {
      for (const char* v : kValidNotLoaded)
        if (dt == v)
          corrupt(at(), "tensor '{}': dtype \"{}\" is valid safetensors but retort does not load it (it reads F32, "
                        "F16 (as F32), BF16, F64, I64, U8)", who, dt);
      corrupt(at(), "tensor '{}': unknown dtype \"{}\" (retort reads F32, F16 (as F32), BF16, F64, I64, U8)", who,
              shown(dt));
    }

    auto shape_it = spec.find("shape");
    if (shape_it == spec.end() || !shape_it->is_array()) corrupt(at(), "tensor '{}': missing or non-array \"shape\"", who);
    const ojson& shape = *shape_it;
    if (shape.size() > kMaxDimsLoaded)
      corrupt(at(), "tensor '{}': shape has {} dims, retort supports at most {}", who, shape.size(), kMaxDimsLoaded);
    // The product of the non-zero dims must fit int64 (retort's strides hold it), computed
    // without overflow; one zero dim makes the tensor empty.
    constexpr uint64_t kMax = uint64_t(std::numeric_limits<int64_t>::max());
    uint64_t nonzero_product = 1;
    bool empty = false;
    for (const auto& d : shape) {
      if (!d.is_number_unsigned())
        corrupt(at(), "tensor '{}': shape {} has an entry that is not a non-negative integer", who, shape_text(shape));
      uint64_t v = d.get<uint64_t>();
      if (v == 0) {
        empty = true;
      } else {
        if (v > kMax || nonzero_product > kMax / v)
          corrupt(at(), "tensor '{}': shape {} has more elements than an int64 can count", who, shape_text(shape));
        nonzero_product *= v;
      }
      e.shape.push_back(int64_t(v));
    }
    const uint64_t numel = empty ? 0 : nonzero_product;
    e.numel = int64_t(numel);

    auto offs_it = spec.find("data_offsets");
    if (offs_it == spec.end() || !offs_it->is_array() || offs_it->size() != 2 || !(*offs_it)[0].is_number_unsigned() ||
        !(*offs_it)[1].is_number_unsigned())
      corrupt(at(), "tensor '{}': \"data_offsets\" must be [begin, end] with non-negative integers", who);
    e.begin = (*offs_it)[0].get<uint64_t>();
    e.end = (*offs_it)[1].get<uint64_t>();
    if (e.begin > e.end) corrupt(at(), "tensor '{}': data_offsets [{}, {}] end before they begin", who, e.begin, e.end);
    if (e.end > data_size_)
      corrupt(data_start + std::min(e.begin, data_size_),
              "tensor '{}': data_offsets [{}, {}] reach past the end of the file (the data region holds {} bytes)", who,
              e.begin, e.end, data_size_);
    const uint64_t have = e.end - e.begin;
    if (numel > std::numeric_limits<uint64_t>::max() / dsize || numel * dsize != have) {
      std::string need = numel > std::numeric_limits<uint64_t>::max() / dsize ? std::string("more than 2^64")
                                                                               : std::to_string(numel * dsize);
      corrupt(data_start + e.begin, "tensor '{}': data_offsets [{}, {}] cover {} bytes but {} {} needs {}", who,
              e.begin, e.end, have, dt, shape_text(e.shape), need);
    }
    return e;
  }

  // The byte ranges must tile the data region exactly: no overlap, no hole, nothing after.
  void check_tiling(const SafetensorsIndex& index) const {
    std::vector<const SafetensorsEntry*> by_offset;
    for (const auto& e : index.entries) by_offset.push_back(&e);
    std::stable_sort(by_offset.begin(), by_offset.end(), [](const SafetensorsEntry* a, const SafetensorsEntry* b) {
      return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
    });
    uint64_t covered = 0;
    const SafetensorsEntry* prev = nullptr;
    for (const SafetensorsEntry* e : by_offset) {
      if (e->begin < covered)
        corrupt(index.data_start + e->begin,
                "tensor '{}' (data_offsets [{}, {}]) overlaps tensor '{}' (data_offsets [{}, {}])", shown(e->name),
                e->begin, e->end, shown(prev->name), prev->begin, prev->end);
      if (e->begin > covered)
        corrupt(index.data_start + covered, "{} bytes before tensor '{}' belong to no tensor", e->begin - covered,
                shown(e->name));
      covered = e->end;
      prev = e;
    }
    if (covered < data_size_)
      corrupt(index.data_start + covered, "{} bytes of trailing data after the last tensor", data_size_ - covered);
  }

  const unsigned char* bytes_;
  size_t size_;
  const std::string& label_;
  std::string_view text_;
  uint64_t data_size_ = 0;
  std::vector<std::string> key_order_;  // top-level keys in header order
};

}  // namespace

SafetensorsIndex parse_safetensors_index(const unsigned char* bytes, size_t size, const std::string& label) {
  return Validator(bytes, size, label).run();
}

size_t safetensors_file_dtype_size(SafetensorsDType t) {
  for (const auto& k : kLoadable)
    if (k.file == t) return k.size;
  return 0;
}
const char* safetensors_file_dtype_name(SafetensorsDType t) {
  for (const auto& k : kLoadable)
    if (k.file == t) return k.name;
  return "?";
}

float f16_bits_to_f32(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  uint32_t exponent = (h >> 10) & 0x1fu;
  uint32_t mantissa = h & 0x3ffu;
  uint32_t bits;
  if (exponent == 0x1f) {  // inf / NaN: keep the payload
    bits = sign | 0x7f800000u | (mantissa << 13);
  } else if (exponent != 0) {  // normal: rebias 15 -> 127
    bits = sign | ((exponent + 112u) << 23) | (mantissa << 13);
  } else if (mantissa == 0) {  // +-0
    bits = sign;
  } else {  // subnormal: mantissa * 2^-24, normalised for F32
    int e = -1;
    do {
      mantissa <<= 1;
      ++e;
    } while ((mantissa & 0x400u) == 0);
    bits = sign | (uint32_t(112 - e) << 23) | ((mantissa & 0x3ffu) << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

void decode_safetensors_entry(const SafetensorsEntry& e, const unsigned char* src, void* dst) {
  const size_t n = size_t(e.numel);
  if (e.file_dtype == SafetensorsDType::F16) {
    auto* out = static_cast<float*>(dst);
    for (size_t i = 0; i < n; ++i) {
      uint16_t h;
      std::memcpy(&h, src + 2 * i, 2);
      out[i] = f16_bits_to_f32(h);
    }
    return;
  }
  if (n) std::memcpy(dst, src, n * safetensors_file_dtype_size(e.file_dtype));
}

}  // namespace retort
