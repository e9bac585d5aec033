#include "common.h"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <string>
#include <unistd.h>

namespace vrdma {

namespace {

size_t ElementBytes(napi_typedarray_type type) {
  switch (type) {
    case napi_int8_array:
    case napi_uint8_array:
    case napi_uint8_clamped_array:
      return 1;
    case napi_int16_array:
    case napi_uint16_array:
      return 2;
    case napi_int32_array:
    case napi_uint32_array:
    case napi_float32_array:
      return 4;
    default:  // float64, bigint64, biguint64
      return 8;
  }
}

}  // namespace

ByteSpan GetBytes(const Napi::Env& env, const Napi::Value& value, const char* what) {
  napi_env e = env;
  bool isTyped = false;
  bool isDataView = false;
  void* data = nullptr;
  size_t lenBytes = 0;
  napi_value buffer = nullptr;
  if (napi_is_typedarray(e, value, &isTyped) == napi_ok && isTyped) {
    napi_typedarray_type type;
    size_t length = 0;
    size_t byteOffset = 0;
    NAPI_THROW_IF_FAILED(env, napi_get_typedarray_info(e, value, &type, &length, &data, &buffer, &byteOffset),
                         ByteSpan{});
    lenBytes = length * ElementBytes(type);
  } else if (napi_is_dataview(e, value, &isDataView) == napi_ok && isDataView) {
    size_t byteOffset = 0;
    NAPI_THROW_IF_FAILED(env, napi_get_dataview_info(e, value, &lenBytes, &data, &buffer, &byteOffset), ByteSpan{});
  } else {
    throw Napi::TypeError::New(env, std::string(what) + " must be a TypedArray or DataView");
  }
  bool isArrayBuffer = false;
  NAPI_THROW_IF_FAILED(env, napi_is_arraybuffer(e, buffer, &isArrayBuffer), ByteSpan{});
  // A detached buffer reports a null pointer and zero length; treat it as empty.
  return ByteSpan{static_cast<uint8_t*>(data), data == nullptr ? 0 : lenBytes, !isArrayBuffer};
}

namespace {

void* GetTyped(const Napi::Env& env, const Napi::Value& value, napi_typedarray_type want, const char* what,
               const char* typeName, size_t* count) {
  bool isTyped = false;
  napi_typedarray_type type = napi_uint8_array;
  void* data = nullptr;
  size_t length = 0;
  if (napi_is_typedarray(env, value, &isTyped) == napi_ok && isTyped) {
    NAPI_THROW_IF_FAILED(env, napi_get_typedarray_info(env, value, &type, &length, &data, nullptr, nullptr), nullptr);
  }
  if (!isTyped || type != want) throw Napi::TypeError::New(env, std::string(what) + " must be a " + typeName);
  *count = data == nullptr ? 0 : length;
  return data;
}

}  // namespace

double* GetFloat64s(const Napi::Env& env, const Napi::Value& value, const char* what, size_t* count) {
  return static_cast<double*>(GetTyped(env, value, napi_float64_array, what, "Float64Array", count));
}

uint32_t* GetUint32s(const Napi::Env& env, const Napi::Value& value, const char* what, size_t* count) {
  return static_cast<uint32_t*>(GetTyped(env, value, napi_uint32_array, what, "Uint32Array", count));
}

int64_t GetInt(const Napi::Env& env, const Napi::Value& value, const char* what, int64_t min, int64_t max) {
  if (!value.IsNumber()) throw Napi::TypeError::New(env, std::string(what) + " must be a number");
  const double d = value.As<Napi::Number>().DoubleValue();
  if (!(d >= static_cast<double>(min) && d <= static_cast<double>(max)) || std::trunc(d) != d) {
    throw Napi::RangeError::New(env, std::string(what) + " must be an integer in [" + std::to_string(min) + ", " +
                                         std::to_string(max) + "], got " + value.ToString().Utf8Value());
  }
  return static_cast<int64_t>(d);
}

int GetFd(const Napi::Env& env, const Napi::Value& value, const char* what) {
  return static_cast<int>(GetInt(env, value, what, 0, INT32_MAX));
}

void CheckRange(const Napi::Env& env, size_t spanLen, uint64_t off, uint64_t len, const char* what) {
  if (off > spanLen || len > spanLen - off) {
    throw Napi::RangeError::New(env, std::string(what) + ": range [" + std::to_string(off) + ", +" +
                                         std::to_string(len) + ") is outside the " + std::to_string(spanLen) +
                                         "-byte view");
  }
}

void ThrowErrno(const Napi::Env& env, const char* syscall, int err) {
#if defined(__GLIBC__)
  const char* name = strerrorname_np(err);
#else
  const char* name = nullptr;
#endif
  const std::string code = name != nullptr ? name : "E" + std::to_string(err);
  Napi::Error error = Napi::Error::New(env, std::string(syscall) + ": " + code + " (" + std::strerror(err) + ")");
  error.Set("code", Napi::String::New(env, code));
  error.Set("errno", Napi::Number::New(env, err));
  error.Set("syscall", Napi::String::New(env, syscall));
  throw error;
}

void CloseAndThrowErrno(const Napi::Env& env, int fd, const char* syscall) {
  const int err = errno;
  close(fd);
  ThrowErrno(env, syscall, err);
}

}  // namespace vrdma
