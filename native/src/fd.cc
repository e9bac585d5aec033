// Plain file-descriptor operations every fd-making part of the addon needs: close, readiness by
// poll(2), and the close-on-exec flag (fds received from a peer must carry it).
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>

#include "common.h"
#include "modules.h"

namespace vrdma {

namespace {

// closeFd(fd): close(2). EINTR still closes the fd on Linux, so it is not retried.
Napi::Value CloseFd(const Napi::CallbackInfo& info) {
  const int fd = GetFd(info.Env(), info[0], "fd");
  if (close(fd) != 0 && errno != EINTR) ThrowErrno(info.Env(), "close", errno);
  return info.Env().Undefined();
}

// pollFd(fd, events, timeoutMs): poll(2) on one fd; returns revents (0 on timeout). Blocks the
// calling thread for up to timeoutMs (-1: no limit), so the event loop should pass 0.
Napi::Value PollFd(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  pollfd p{};
  p.fd = GetFd(env, info[0], "fd");
  p.events = static_cast<short>(GetInt(env, info[1], "events", 0, 0x7fff));
  const int timeoutMs = static_cast<int>(GetInt(env, info[2], "timeoutMs", -1, INT32_MAX));
  int n;
  do {
    n = poll(&p, 1, timeoutMs);
  } while (n < 0 && errno == EINTR);
  if (n < 0) ThrowErrno(env, "poll", errno);
  return Napi::Number::New(env, n == 0 ? 0 : p.revents);
}

// fdCloexec(fd): whether FD_CLOEXEC is set; throws EBADF for a closed fd.
Napi::Value FdCloexec(const Napi::CallbackInfo& info) {
  const int flags = fcntl(GetFd(info.Env(), info[0], "fd"), F_GETFD);
  if (flags < 0) ThrowErrno(info.Env(), "fcntl", errno);
  return Napi::Boolean::New(info.Env(), (flags & FD_CLOEXEC) != 0);
}

}  // namespace

void RegisterFd(Napi::Env env, Napi::Object exports) {
  exports.Set("closeFd", Napi::Function::New(env, CloseFd, "closeFd"));
  exports.Set("pollFd", Napi::Function::New(env, PollFd, "pollFd"));
  exports.Set("fdCloexec", Napi::Function::New(env, FdCloexec, "fdCloexec"));
  Napi::Object poll = Napi::Object::New(env);
  poll.Set("POLLIN", Napi::Number::New(env, POLLIN));
  poll.Set("POLLOUT", Napi::Number::New(env, POLLOUT));
  poll.Set("POLLERR", Napi::Number::New(env, POLLERR));
  poll.Set("POLLHUP", Napi::Number::New(env, POLLHUP));
  exports.Set("poll", poll);
}

}  // namespace vrdma
