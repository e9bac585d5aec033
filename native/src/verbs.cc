// ibverbs probe: which RDMA devices libibverbs sees on this host. Compiled against libibverbs only
// when native/probe-verbs.sh found it at build time (VRDMA_HAVE_VERBS); otherwise the addon still
// builds and says that no RDMA device support was compiled in. A device is never invented: the
// list is exactly what ibv_get_device_list returns.
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "common.h"
#include "modules.h"

#if defined(VRDMA_HAVE_VERBS)
#include <endian.h>
#include <infiniband/verbs.h>
#endif

namespace vrdma {

namespace {

#if defined(VRDMA_HAVE_VERBS)

const char* NodeTypeName(ibv_node_type type) {
  return ibv_node_type_str(type);
}

Napi::Value ListRdmaDevices(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  out.Set("verbsCompiledIn", Napi::Boolean::New(env, true));
  Napi::Array devices = Napi::Array::New(env);
  int n = 0;
  ibv_device** list = ibv_get_device_list(&n);
  if (list == nullptr) {
    const int err = errno;
    out.Set("devices", devices);
    // ENOSYS: the kernel has no uverbs interface (no RDMA driver loaded), the usual case on a
    // host without an RDMA NIC.
    out.Set("reason", Napi::String::New(env, std::string("libibverbs could not list RDMA devices (ibv_get_device_list: ") +
                                                 strerror(err) + (err == ENOSYS ? "; no RDMA support in this kernel)" : ")")));
    return out;
  }
  for (int i = 0; i < n; i++) {
    ibv_device* d = list[i];
    Napi::Object dev = Napi::Object::New(env);
    char guid[17];
    std::snprintf(guid, sizeof guid, "%016llx", static_cast<unsigned long long>(be64toh(ibv_get_device_guid(d))));
    dev.Set("name", Napi::String::New(env, ibv_get_device_name(d)));
    dev.Set("guid", Napi::String::New(env, guid));
    dev.Set("nodeType", Napi::String::New(env, NodeTypeName(d->node_type)));
    devices.Set(static_cast<uint32_t>(i), dev);
  }
  ibv_free_device_list(list);
  out.Set("devices", devices);
  if (n == 0) out.Set("reason", Napi::String::New(env, "libibverbs found no RDMA devices on this host"));
  return out;
}

#else

Napi::Value ListRdmaDevices(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  out.Set("verbsCompiledIn", Napi::Boolean::New(env, false));
  out.Set("devices", Napi::Array::New(env));
  out.Set("reason", Napi::String::New(env,
                                      "no RDMA device support compiled in: infiniband/verbs.h and libibverbs were not "
                                      "found when the addon was built (install rdma-core's libibverbs-dev and run "
                                      "\"npm run build:native\")"));
  return out;
}

#endif

}  // namespace

void RegisterVerbs(Napi::Env env, Napi::Object exports) {
  exports.Set("listRdmaDevices", Napi::Function::New(env, ListRdmaDevices, "listRdmaDevices"));
}

}  // namespace vrdma
