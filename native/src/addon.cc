// Entry point of the vrdma native addon: what JavaScript cannot do (docs/native.md).
// kAbiVersion must match NATIVE_ABI_VERSION in src/native/addon.ts; the loader refuses a stale
// build whose exports it does not know.
#include "modules.h"

namespace {

constexpr int kAbiVersion = 3;

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("abiVersion", Napi::Number::New(env, kAbiVersion));
  vrdma::RegisterCrc32(env, exports);
  vrdma::RegisterRegion(env, exports);
  vrdma::RegisterFd(env, exports);
  vrdma::RegisterFdWatch(env, exports);
  vrdma::RegisterEventFd(env, exports);
  vrdma::RegisterMapping(env, exports);
  vrdma::RegisterUnixSocket(env, exports);
  vrdma::RegisterUdp(env, exports);
  vrdma::RegisterVerbs(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(vrdma_native, Init)
