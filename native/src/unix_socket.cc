// AF_UNIX stream sockets with file-descriptor passing (SCM_RIGHTS), which Node's net module
// cannot do and vhost-user needs: the front end sends guest memory files, kick/call eventfds and
// the log fd as ancillary data. Every socket is non-blocking and close-on-exec; readiness comes
// from pollFd. Received fds are close-on-exec too (MSG_CMSG_CLOEXEC) and are all handed to the
// caller, who must close any it did not expect (DESIGN.md "Trust").
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "common.h"
#include "modules.h"

namespace vrdma {

namespace {

// The kernel's limit of fds in one SCM_RIGHTS message (SCM_MAX_FD in include/net/scm.h).
constexpr int64_t kMaxFdsPerMessage = 253;

sockaddr_un PathAddress(const Napi::Env& env, const Napi::Value& value, socklen_t* lenBytes) {
  if (!value.IsString()) throw Napi::TypeError::New(env, "path must be a string");
  const std::string path = value.As<Napi::String>().Utf8Value();
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof addr.sun_path || path.find('\0') != std::string::npos) {
    throw Napi::RangeError::New(env, "socket path must be 1 to " + std::to_string(sizeof addr.sun_path - 1) +
                                         " bytes without NUL: " + path);
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  *lenBytes = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + 1);
  return addr;
}

int NewSocket(const Napi::Env& env) {
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) ThrowErrno(env, "socket", errno);
  return fd;
}

// unixListen(path, backlog = 16): a listening socket bound to path (which must not exist).
Napi::Value UnixListen(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  socklen_t len = 0;
  const sockaddr_un addr = PathAddress(env, info[0], &len);
  const int backlog = info[1].IsUndefined() ? 16 : static_cast<int>(GetInt(env, info[1], "backlog", 1, 4096));
  const int fd = NewSocket(env);
  if (bind(fd, reinterpret_cast<const sockaddr*>(&addr), len) != 0 || listen(fd, backlog) != 0) {
    CloseAndThrowErrno(env, fd, "bind/listen");
  }
  return Napi::Number::New(env, fd);
}

// unixConnect(path): a socket connected to the listener at path. A full backlog fails EAGAIN.
Napi::Value UnixConnect(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  socklen_t len = 0;
  const sockaddr_un addr = PathAddress(env, info[0], &len);
  const int fd = NewSocket(env);
  int rc;
  do {
    rc = connect(fd, reinterpret_cast<const sockaddr*>(&addr), len);
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) {
    CloseAndThrowErrno(env, fd, "connect");
  }
  return Napi::Number::New(env, fd);
}

// unixAccept(fd): the next connection (non-blocking, close-on-exec), or -1 if none is pending.
Napi::Value UnixAccept(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  const int listener = GetFd(env, info[0], "fd");
  int fd;
  do {
    fd = accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return Napi::Number::New(env, -1);
  if (fd < 0) ThrowErrno(env, "accept4", errno);
  return Napi::Number::New(env, fd);
}

// unixSocketPair(): two connected sockets, [a, b].
Napi::Value UnixSocketPair(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) != 0) ThrowErrno(env, "socketpair", errno);
  Napi::Array out = Napi::Array::New(env, 2);
  out.Set(0u, Napi::Number::New(env, fds[0]));
  out.Set(1u, Napi::Number::New(env, fds[1]));
  return out;
}

// unixSendMsg(fd, data, offset, length, fds = []): send bytes with fds attached to the first
// byte. Returns the bytes sent (a stream may take fewer than asked; the fds went with the first
// of them), or -1 if the socket buffer is full and nothing was sent.
Napi::Value UnixSendMsg(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  const int fd = GetFd(env, info[0], "fd");
  const ByteSpan span = GetBytes(env, info[1], "data");
  const auto off = static_cast<uint64_t>(GetInt(env, info[2], "offset", 0, kMaxSafeInt));
  const auto len = static_cast<uint64_t>(GetInt(env, info[3], "length", 0, kMaxSafeInt));
  CheckRange(env, span.lenBytes, off, len, "unixSendMsg");
  std::vector<int> passed;
  if (!info[4].IsUndefined()) {
    if (!info[4].IsArray()) throw Napi::TypeError::New(env, "fds must be an array of file descriptors");
    const Napi::Array arr = info[4].As<Napi::Array>();
    if (arr.Length() > kMaxFdsPerMessage) throw Napi::RangeError::New(env, "at most 253 fds per message");
    for (uint32_t i = 0; i < arr.Length(); i++) passed.push_back(GetFd(env, arr.Get(i), "fds[i]"));
  }
  // A stream socket drops ancillary data sent with no bytes; refuse rather than lose the fds.
  if (len == 0 && !passed.empty()) throw Napi::RangeError::New(env, "fds must travel with at least one byte");
  iovec iov{span.data + off, static_cast<size_t>(len)};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  std::vector<char> control;
  if (!passed.empty()) {
    const size_t fdBytes = passed.size() * sizeof(int);
    control.assign(CMSG_SPACE(fdBytes), 0);
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(fdBytes);
    std::memcpy(CMSG_DATA(c), passed.data(), fdBytes);
  }
  ssize_t n;
  do {
    n = sendmsg(fd, &msg, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return Napi::Number::New(env, -1);
  if (n < 0) ThrowErrno(env, "sendmsg", errno);
  return Napi::Number::New(env, static_cast<double>(n));
}

// unixRecvMsg(fd, data, offset, length, maxFds = 16): receive into data[offset, +length).
// Returns { bytes, fds, controlTruncated }: bytes is -1 when nothing is ready and 0 at end of
// stream; fds are every descriptor that arrived (close-on-exec); controlTruncated means more fds
// were sent than maxFds allowed, and the ones that did not fit were closed.
Napi::Value UnixRecvMsg(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  const int fd = GetFd(env, info[0], "fd");
  const ByteSpan span = GetBytes(env, info[1], "data");
  const auto off = static_cast<uint64_t>(GetInt(env, info[2], "offset", 0, kMaxSafeInt));
  const auto len = static_cast<uint64_t>(GetInt(env, info[3], "length", 0, kMaxSafeInt));
  CheckRange(env, span.lenBytes, off, len, "unixRecvMsg");
  const int64_t maxFds = info[4].IsUndefined() ? 16 : GetInt(env, info[4], "maxFds", 0, kMaxFdsPerMessage);
  iovec iov{span.data + off, static_cast<size_t>(len)};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  std::vector<char> control(maxFds > 0 ? CMSG_SPACE(static_cast<size_t>(maxFds) * sizeof(int)) : 0);
  msg.msg_control = control.empty() ? nullptr : control.data();
  msg.msg_controllen = control.size();
  ssize_t n;
  do {
    n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  Napi::Object out = Napi::Object::New(env);
  Napi::Array fds = Napi::Array::New(env);
  bool extraClosed = false;
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
    n = -1;
  } else if (n < 0) {
    ThrowErrno(env, "recvmsg", errno);
  } else {
    uint32_t count = 0;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      const size_t fdCount = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < fdCount; i++) {
        int received;
        std::memcpy(&received, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
        // CMSG_SPACE rounds the buffer up, so the kernel may deliver a few more than maxFds:
        // close those here, so maxFds is exact and the excess reads as truncation.
        if (count >= maxFds) {
          close(received);
          extraClosed = true;
          continue;
        }
        fds.Set(count++, Napi::Number::New(env, received));
      }
    }
  }
  out.Set("bytes", Napi::Number::New(env, static_cast<double>(n)));
  out.Set("fds", fds);
  out.Set("controlTruncated", Napi::Boolean::New(env, n >= 0 && (extraClosed || (msg.msg_flags & MSG_CTRUNC) != 0)));
  return out;
}

}  // namespace

void RegisterUnixSocket(Napi::Env env, Napi::Object exports) {
  exports.Set("unixListen", Napi::Function::New(env, UnixListen, "unixListen"));
  exports.Set("unixConnect", Napi::Function::New(env, UnixConnect, "unixConnect"));
  exports.Set("unixAccept", Napi::Function::New(env, UnixAccept, "unixAccept"));
  exports.Set("unixSocketPair", Napi::Function::New(env, UnixSocketPair, "unixSocketPair"));
  exports.Set("unixSendMsg", Napi::Function::New(env, UnixSendMsg, "unixSendMsg"));
  exports.Set("unixRecvMsg", Napi::Function::New(env, UnixRecvMsg, "unixRecvMsg"));
}

}  // namespace vrdma
