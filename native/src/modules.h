// One Register function per concern; addon.cc calls them all to build the exports object.
#pragma once

#include <napi.h>

namespace vrdma {

void RegisterCrc32(Napi::Env env, Napi::Object exports);
void RegisterRegion(Napi::Env env, Napi::Object exports);
void RegisterFd(Napi::Env env, Napi::Object exports);
void RegisterFdWatch(Napi::Env env, Napi::Object exports);
void RegisterEventFd(Napi::Env env, Napi::Object exports);
void RegisterMapping(Napi::Env env, Napi::Object exports);
void RegisterUnixSocket(Napi::Env env, Napi::Object exports);
void RegisterUdp(Napi::Env env, Napi::Object exports);
void RegisterVerbs(Napi::Env env, Napi::Object exports);

}  // namespace vrdma
