// eventfd(2): the kick and call notifiers of vhost-user (a front end passes them over the socket)
// and a way to wake a thread blocked in poll. Always non-blocking and close-on-exec.
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>

#include "common.h"
#include "modules.h"

namespace vrdma {

namespace {

// eventfdCreate(initial = 0): a new eventfd with EFD_NONBLOCK | EFD_CLOEXEC.
Napi::Value EventFdCreate(const Napi::CallbackInfo& info) {
  const auto initial = info[0].IsUndefined() ? 0 : static_cast<unsigned>(GetInt(info.Env(), info[0], "initial", 0, UINT32_MAX));
  const int fd = eventfd(initial, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd < 0) ThrowErrno(info.Env(), "eventfd", errno);
  return Napi::Number::New(info.Env(), fd);
}

// eventfdWrite(fd, value = 1): adds value to the counter. Returns false, writing nothing, when the
// counter would pass 2^64 - 2 (EAGAIN): the reader has fallen that far behind.
Napi::Value EventFdWrite(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  const int fd = GetFd(env, info[0], "fd");
  const uint64_t value = info[1].IsUndefined() ? 1 : static_cast<uint64_t>(GetInt(env, info[1], "value", 1, kMaxSafeInt));
  ssize_t n;
  do {
    n = write(fd, &value, sizeof value);
  } while (n < 0 && errno == EINTR);
  if (n < 0 && errno == EAGAIN) return Napi::Boolean::New(env, false);
  if (n != static_cast<ssize_t>(sizeof value)) ThrowErrno(env, "write", n < 0 ? errno : EIO);
  return Napi::Boolean::New(env, true);
}

// eventfdRead(fd): the counter, which the read resets to 0; 0 when nothing was signalled.
// The counter is a u64; values above 2^53 lose precision as a JS number, which a notifier never
// reaches (it counts kicks).
Napi::Value EventFdRead(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  const int fd = GetFd(env, info[0], "fd");
  uint64_t value = 0;
  ssize_t n;
  do {
    n = read(fd, &value, sizeof value);
  } while (n < 0 && errno == EINTR);
  if (n < 0 && errno == EAGAIN) return Napi::Number::New(env, 0);
  if (n != static_cast<ssize_t>(sizeof value)) ThrowErrno(env, "read", n < 0 ? errno : EIO);
  return Napi::Number::New(env, static_cast<double>(value));
}

}  // namespace

void RegisterEventFd(Napi::Env env, Napi::Object exports) {
  exports.Set("eventfdCreate", Napi::Function::New(env, EventFdCreate, "eventfdCreate"));
  exports.Set("eventfdWrite", Napi::Function::New(env, EventFdWrite, "eventfdWrite"));
  exports.Set("eventfdRead", Napi::Function::New(env, EventFdRead, "eventfdRead"));
}

}  // namespace vrdma
