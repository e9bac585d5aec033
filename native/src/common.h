// Helpers shared by every part of the addon: argument checking, byte spans over TypedArrays
// (including ones over a SharedArrayBuffer), and errors that carry errno like Node's own.
#pragma once

#include <napi.h>

#include <cstddef>
#include <cstdint>

namespace vrdma {

/** Bytes of a TypedArray or DataView, and whether its backing store is a SharedArrayBuffer. */
struct ByteSpan {
  uint8_t* data;
  size_t lenBytes;
  bool shared;
};

/**
 * The bytes behind a TypedArray or DataView. Node 20's N-API has no SharedArrayBuffer calls
 * (napi_get_arraybuffer_info refuses one), but napi_get_typedarray_info and
 * napi_get_dataview_info return the data pointer of a view over either kind of buffer; a view
 * whose buffer is not an ArrayBuffer is therefore over a SharedArrayBuffer.
 */
ByteSpan GetBytes(const Napi::Env& env, const Napi::Value& value, const char* what);

/** The elements of a Float64Array (over either kind of buffer); throws TypeError otherwise. */
double* GetFloat64s(const Napi::Env& env, const Napi::Value& value, const char* what, size_t* count);

/** The elements of a Uint32Array (over either kind of buffer); throws TypeError otherwise. */
uint32_t* GetUint32s(const Napi::Env& env, const Napi::Value& value, const char* what, size_t* count);

/** `value` as an integer in [min, max]; throws TypeError/RangeError naming `what`. */
int64_t GetInt(const Napi::Env& env, const Napi::Value& value, const char* what, int64_t min, int64_t max);

/** A file descriptor argument: an integer in [0, INT32_MAX]. */
int GetFd(const Napi::Env& env, const Napi::Value& value, const char* what);

/** Checks [off, off+len) lies inside a span of `spanLen` bytes, overflow-safe; throws RangeError. */
void CheckRange(const Napi::Env& env, size_t spanLen, uint64_t off, uint64_t len, const char* what);

/**
 * Throws an Error for a failed system call, shaped like Node's: message "syscall: ECODE (text)",
 * properties code ("EBADF"), errno (the positive number) and syscall.
 */
[[noreturn]] void ThrowErrno(const Napi::Env& env, const char* syscall, int err);

/** A call on a socket just created failed: close it (keeping errno) and throw that errno. */
[[noreturn]] void CloseAndThrowErrno(const Napi::Env& env, int fd, const char* syscall);

/** Maximum safe integer in a JS number (2^53 - 1). */
constexpr int64_t kMaxSafeInt = (int64_t{1} << 53) - 1;

}  // namespace vrdma
