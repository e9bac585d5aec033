// Guest region table lookup in C: the native baseline of assembly/region.ts's regionLookup, with
// the same table layout and the same results, reading the table through a view over a device's
// shared Wasm memory (a SharedArrayBuffer). The JS-facing form mirrors regionTranslate: 64-bit
// values arrive as doubles and a result is an offset >= 0 or a status < 0 (assembly/status.ts).
#include <cstring>
#include <string>

#include "common.h"
#include "modules.h"

namespace vrdma {

namespace {

// assembly/status.ts
constexpr int64_t kStOutOfRange = -1;
constexpr int64_t kStOverflow = -2;

// assembly/region.ts: 16-byte header {u32 count, u32 generation, u32 capacity, u32 reserved},
// then 32-byte entries {u64 gpa, u64 size, u64 hostOffset, u64 flags}, sorted by gpa.
constexpr size_t kHeaderBytes = 16;
constexpr size_t kEntryBytes = 32;

inline uint64_t LoadU64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

/** A table known to lie inside the view: `count` entries starting at `entries`. */
struct Table {
  const uint8_t* entries;
  uint32_t count;
};

/** Same search and containment rules as regionLookup in assembly/region.ts. */
int64_t Lookup(const Table& table, uint64_t gpa, uint64_t len) {
  uint32_t lo = 0;
  uint32_t hi = table.count;
  while (lo < hi) {
    const uint32_t mid = (lo + hi) >> 1;
    if (LoadU64(table.entries + static_cast<size_t>(mid) * kEntryBytes) <= gpa) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  if (lo == 0) return kStOutOfRange;
  const uint8_t* e = table.entries + static_cast<size_t>(lo - 1) * kEntryBytes;
  const uint64_t size = LoadU64(e + 8);
  const uint64_t rel = gpa - LoadU64(e);
  // Overflow-safe containment; a zero-length access exactly at a region's end is inside it.
  if (rel >= size && !(rel == size && len == 0)) return kStOutOfRange;
  if (len > size - rel) return gpa + len < gpa ? kStOverflow : kStOutOfRange;
  return static_cast<int64_t>(LoadU64(e + 16) + rel);
}

/** regionTranslate's boundary: doubles outside [0, 1.8e19] or NaN are ST_OVERFLOW. */
inline double Translate(const Table& table, double gpa, double len) {
  if (!(gpa >= 0) || !(len >= 0) || gpa > 1.8e19 || len > 1.8e19) return static_cast<double>(kStOverflow);
  return static_cast<double>(Lookup(table, static_cast<uint64_t>(gpa), static_cast<uint64_t>(len)));
}

/**
 * The table at `tableOff` in the view, with its entries checked to lie inside the view: the view
 * must cover the table, so a corrupt count cannot make C read past the memory (Wasm would trap).
 */
Table TableArg(const Napi::Env& env, const Napi::Value& memory, const Napi::Value& offset) {
  const ByteSpan span = GetBytes(env, memory, "memory");
  const auto tableOff = static_cast<uint64_t>(GetInt(env, offset, "tableOff", 0, kMaxSafeInt));
  CheckRange(env, span.lenBytes, tableOff, kHeaderBytes, "region table header");
  const uint8_t* base = span.data + tableOff;
  uint32_t count;
  std::memcpy(&count, base, 4);
  const size_t room = (span.lenBytes - tableOff - kHeaderBytes) / kEntryBytes;
  if (count > room) {
    throw Napi::RangeError::New(env, "region table at " + std::to_string(tableOff) + " claims " +
                                         std::to_string(count) + " entries; the view holds " + std::to_string(room));
  }
  return Table{base + kHeaderBytes, count};
}

// regionLookup(memory, tableOff, gpa, len): offset of [gpa, gpa+len) or a status < 0.
Napi::Value RegionLookup(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  const Table table = TableArg(env, info[0], info[1]);
  if (!info[2].IsNumber() || !info[3].IsNumber()) throw Napi::TypeError::New(env, "gpa and len must be numbers");
  const double gpa = info[2].As<Napi::Number>().DoubleValue();
  const double len = info[3].As<Napi::Number>().DoubleValue();
  return Napi::Number::New(env, Translate(table, gpa, len));
}

// regionLookupBatch(memory, tableOff, gpas, lens, out): out[i] = regionLookup of (gpas[i],
// lens[i]) for every i, in one call, so a benchmark measures the lookups rather than the JS->C
// call. The three Float64Arrays must have the same length; returns that length.
Napi::Value RegionLookupBatch(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  const Table table = TableArg(env, info[0], info[1]);
  size_t n = 0;
  size_t nLens = 0;
  size_t nOut = 0;
  const double* gpas = GetFloat64s(env, info[2], "gpas", &n);
  const double* lens = GetFloat64s(env, info[3], "lens", &nLens);
  double* out = GetFloat64s(env, info[4], "out", &nOut);
  if (nLens != n || nOut != n) throw Napi::RangeError::New(env, "gpas, lens and out must have the same length");
  for (size_t i = 0; i < n; i++) out[i] = Translate(table, gpas[i], lens[i]);
  return Napi::Number::New(env, static_cast<double>(n));
}

}  // namespace

void RegisterRegion(Napi::Env env, Napi::Object exports) {
  exports.Set("regionLookup", Napi::Function::New(env, RegionLookup, "regionLookup"));
  exports.Set("regionLookupBatch", Napi::Function::New(env, RegionLookupBatch, "regionLookupBatch"));
}

}  // namespace vrdma
