// CRC-32 as zlib computes it (IEEE 802.3 polynomial 0x04C11DB7, reflected as 0xEDB88320, initial
// value and final XOR 0xFFFFFFFF), slice-by-8: the native baseline the benchmarks set beside the
// Wasm ICRC kernel, which uses the same algorithm family.
#include <cstring>

#include "common.h"
#include "modules.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "slice-by-8 below reads words little-endian");

namespace vrdma {

namespace {

struct Crc32Tables {
  uint32_t t[8][256];
  Crc32Tables() {
    for (uint32_t n = 0; n < 256; n++) {
      uint32_t c = n;
      for (int k = 0; k < 8; k++) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[0][n] = c;
    }
    // t[k][n]: the CRC of byte n followed by k zero bytes, so 8 bytes fold in one step.
    for (uint32_t n = 0; n < 256; n++) {
      for (int k = 1; k < 8; k++) t[k][n] = t[0][t[k - 1][n] & 0xff] ^ (t[k - 1][n] >> 8);
    }
  }
};

const Crc32Tables kTables;

/** zlib's crc32(crc, p, n): continues a CRC (0 to start). */
uint32_t Crc32Update(uint32_t crc, const uint8_t* p, size_t n) {
  const auto& t = kTables.t;
  crc = ~crc;
  while (n > 0 && (reinterpret_cast<uintptr_t>(p) & 7) != 0) {
    crc = t[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
    n--;
  }
  while (n >= 8) {
    uint32_t lo;
    uint32_t hi;
    std::memcpy(&lo, p, 4);
    std::memcpy(&hi, p + 4, 4);
    lo ^= crc;
    crc = t[7][lo & 0xff] ^ t[6][(lo >> 8) & 0xff] ^ t[5][(lo >> 16) & 0xff] ^ t[4][lo >> 24] ^ t[3][hi & 0xff] ^
          t[2][(hi >> 8) & 0xff] ^ t[1][(hi >> 16) & 0xff] ^ t[0][hi >> 24];
    p += 8;
    n -= 8;
  }
  while (n > 0) {
    crc = t[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
    n--;
  }
  return ~crc;
}

/** Arguments shared by both entry points: (data, offset, length) checked against the view. */
const uint8_t* RangeArg(const Napi::CallbackInfo& info, size_t* lenBytes) {
  const Napi::Env env = info.Env();
  const ByteSpan span = GetBytes(env, info[0], "data");
  const auto off = static_cast<uint64_t>(GetInt(env, info[1], "offset", 0, kMaxSafeInt));
  const auto len = static_cast<uint64_t>(GetInt(env, info[2], "length", 0, kMaxSafeInt));
  CheckRange(env, span.lenBytes, off, len, "crc32");
  *lenBytes = len;
  return span.data + off;
}

// crc32(data, offset, length, seed = 0): zlib's crc32 of the range, continuing `seed`.
Napi::Value Crc32(const Napi::CallbackInfo& info) {
  size_t len = 0;
  const uint8_t* p = RangeArg(info, &len);
  const uint32_t seed = info[3].IsUndefined() ? 0 : static_cast<uint32_t>(GetInt(info.Env(), info[3], "seed", 0, 0xffffffffLL));
  return Napi::Number::New(info.Env(), Crc32Update(seed, p, len));
}

// crc32Loop(data, offset, length, iterations): the CRC of the range repeated `iterations` times,
// computed as `iterations` chained passes in one call. Benchmarks use it to amortise the JS->C
// call cost over many passes; chaining each pass on the last keeps the compiler from dropping
// passes and makes the result checkable (zlib's crc32 of the concatenation).
Napi::Value Crc32Loop(const Napi::CallbackInfo& info) {
  size_t len = 0;
  const uint8_t* p = RangeArg(info, &len);
  const int64_t iterations = GetInt(info.Env(), info[3], "iterations", 0, INT32_MAX);
  uint32_t crc = 0;
  for (int64_t i = 0; i < iterations; i++) crc = Crc32Update(crc, p, len);
  return Napi::Number::New(info.Env(), crc);
}

}  // namespace

void RegisterCrc32(Napi::Env env, Napi::Object exports) {
  exports.Set("crc32", Napi::Function::New(env, Crc32, "crc32"));
  exports.Set("crc32Loop", Napi::Function::New(env, Crc32Loop, "crc32Loop"));
}

}  // namespace vrdma
