// Batched UDP I/O for the RoCE v2 net layer (DESIGN.md "Layers", net): one socket per VM bound to
// the VM's IPv4 address (its GID) and port 4791, moving many datagrams per system call with
// sendmmsg/recvmmsg between one JS buffer and the kernel. Non-blocking: a call moves what it can.
//
// A batch is described by a Uint32Array of UDP_DESC_WORDS words per datagram:
//   send: [offset, length, ipv4, port]           the datagram data[offset, +length) to ipv4:port
//   recv: in [offset, capacity, -, -]            a slot of data to receive into
//         out [offset, length, ipv4, port|flags] what arrived and from where; flags has
//                                                UDP_TRUNCATED when the datagram was longer than
//                                                its slot (only `capacity` bytes were kept)
// ipv4 is the address as a 32-bit number in host order (127.0.0.2 is 0x7f000002).
//
// Every socket udpBind makes has IP_MTU_DISCOVER = IP_PMTUDISC_DO. The RoCE v2 ICRC covers the
// IPv4 identification (IBTA annex A17), which a UDP socket cannot choose; with PMTUDISC_DO Linux
// sends DF with id 0 (an unfragmentable datagram needs no id), the id vrdma seals packets under.
// With the default IP_PMTUDISC_WANT it sends DF with a hashed, changing id that no peer checking
// the ICRC against the real header (Linux rxe) would accept.
//
// QPN steering (docs/native.md): udpBind(address, port, steerGroup) makes one member of an
// SO_REUSEPORT group of steerGroup sockets on the same address and port, with a classic BPF
// program (SO_ATTACH_REUSEPORT_CBPF, Linux 4.5) that picks the member for every datagram from its
// RoCE BTH: destination QPN q goes to the member with index q mod steerGroup. Members are indexed
// in the order they were bound; a member that closes is replaced in the kernel's array by the last
// one, so indices shift and a group must be rebuilt, not patched.
#include <arpa/inet.h>
#include <linux/filter.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "common.h"
#include "modules.h"

namespace vrdma {

namespace {

constexpr size_t kDescWords = 4;
constexpr uint32_t kTruncated = 0x10000;
// UIO_MAXIOV: the kernel's cap on messages per sendmmsg/recvmmsg.
constexpr int64_t kMaxBatch = 1024;

/** Per-thread scratch so a batch allocates nothing after the first call on a thread. */
struct Scratch {
  std::vector<mmsghdr> msgs;
  std::vector<iovec> iovs;
  std::vector<sockaddr_in> addrs;
  void Reserve(size_t n) {
    if (msgs.size() < n) {
      msgs.resize(n);
      iovs.resize(n);
      addrs.resize(n);
    }
  }
};

thread_local Scratch scratch;

/** (data, desc, count) arguments, with every slot checked to lie inside data. */
struct Batch {
  ByteSpan data;
  uint32_t* desc;
  size_t count;
};

Batch BatchArgs(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  Batch b{GetBytes(env, info[1], "data"), nullptr, 0};
  size_t words = 0;
  b.desc = GetUint32s(env, info[2], "desc", &words);
  b.count = static_cast<size_t>(GetInt(env, info[3], "count", 0, kMaxBatch));
  if (b.count > words / kDescWords) {
    throw Napi::RangeError::New(env, "desc holds " + std::to_string(words / kDescWords) + " entries, not " +
                                         std::to_string(b.count));
  }
  for (size_t i = 0; i < b.count; i++) {
    CheckRange(env, b.data.lenBytes, b.desc[i * kDescWords], b.desc[i * kDescWords + 1], "datagram slot");
  }
  return b;
}

/** The socket options vrdma sets, by name: level and option number. */
struct SockOpt {
  const char* name;
  int level;
  int option;
};
constexpr SockOpt kSockOpts[] = {
    {"IP_MTU_DISCOVER", IPPROTO_IP, IP_MTU_DISCOVER},
    {"SO_RCVBUF", SOL_SOCKET, SO_RCVBUF},
    {"SO_SNDBUF", SOL_SOCKET, SO_SNDBUF},
};

const SockOpt& GetSockOptName(const Napi::Env& env, const Napi::Value& value) {
  if (!value.IsString()) throw Napi::TypeError::New(env, "option must be a string");
  const std::string name = value.As<Napi::String>().Utf8Value();
  for (const SockOpt& o : kSockOpts) {
    if (name == o.name) return o;
  }
  throw Napi::RangeError::New(env, "unsupported socket option: " + name + " (IP_MTU_DISCOVER, SO_RCVBUF, SO_SNDBUF)");
}

void SetIntOpt(const Napi::Env& env, int fd, int level, int option, int value) {
  if (setsockopt(fd, level, option, &value, sizeof value) != 0) ThrowErrno(env, "setsockopt", errno);
}

// socketSetOption(fd, name, value): setsockopt of an int option named in kSockOpts.
Napi::Value SocketSetOption(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  const int fd = GetFd(env, info[0], "fd");
  const SockOpt& o = GetSockOptName(env, info[1]);
  SetIntOpt(env, fd, o.level, o.option, static_cast<int>(GetInt(env, info[2], "value", 0, INT32_MAX)));
  return env.Undefined();
}

// socketGetOption(fd, name): getsockopt of an int option named in kSockOpts (buffer sizes as
// Linux reports them: twice what was asked, capped by net.core.rmem_max/wmem_max).
Napi::Value SocketGetOption(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  const int fd = GetFd(env, info[0], "fd");
  const SockOpt& o = GetSockOptName(env, info[1]);
  int value = 0;
  socklen_t len = sizeof value;
  if (getsockopt(fd, o.level, o.option, &value, &len) != 0) ThrowErrno(env, "getsockopt", errno);
  return Napi::Number::New(env, value);
}

// rawIpv4Open(protocol): a non-blocking, close-on-exec raw IPv4 socket that receives a copy of
// every IPv4 packet of `protocol` (17: UDP) delivered to this host, IP header included. Needs
// CAP_NET_RAW. Read it with udpRecvMany (any datagram socket works); tests use it to see the
// headers the kernel really sent.
Napi::Value RawIpv4Open(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  const int protocol = static_cast<int>(GetInt(env, info[0], "protocol", 1, 255));
  const int fd = socket(AF_INET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol);
  if (fd < 0) ThrowErrno(env, "socket", errno);
  return Napi::Number::New(env, fd);
}

// Sizes of an SO_REUSEPORT steering group udpBind accepts (the kernel allows more members; 64
// threads per VM address is the bound vrdma sets).
constexpr int64_t kMinSteerGroup = 2;
constexpr int64_t kMaxSteerGroup = 64;

// Attach to a bound SO_REUSEPORT socket the group's classic BPF program, which returns for a UDP
// datagram (it sees the datagram from the UDP payload on, i.e. from the BTH) the member index
// (BTH destination QPN) mod `group`. The BTH's second word is FECN/BECN/reserved (8 bits) then the
// 24-bit destination QPN, big-endian as BPF_LD|BPF_ABS loads it. A datagram shorter than 8 bytes
// makes the load fail, which ends a classic program with 0: it goes to member 0. An index at or
// above the group's current size (not all bound yet, or one closed) makes the kernel hash instead.
// With `overrides` (pairs of QPN and member index), each listed QPN goes to its member instead, by
// a compare and a return per pair ahead of the modulo. Returns errno, 0 on success.
int AttachQpnSteering(int fd, uint32_t group, const uint32_t* overrides = nullptr, size_t pairs = 0) {
  std::vector<sock_filter> code;
  code.reserve(4 + 2 * pairs);
  code.push_back(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 4));
  code.push_back(BPF_STMT(BPF_ALU | BPF_AND | BPF_K, 0xffffff));
  for (size_t i = 0; i < pairs; i++) {
    code.push_back(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, overrides[2 * i], 0, 1));
    code.push_back(BPF_STMT(BPF_RET | BPF_K, overrides[2 * i + 1]));
  }
  code.push_back(BPF_STMT(BPF_ALU | BPF_MOD | BPF_K, group));
  code.push_back(BPF_STMT(BPF_RET | BPF_A, 0));
  sock_fprog prog{};
  prog.len = static_cast<unsigned short>(code.size());
  prog.filter = code.data();
  return setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &prog, sizeof prog) != 0 ? errno : 0;
}

// Most QPNs a steering program may send elsewhere than their modulo: two instructions each, under
// the kernel's 4096 (BPF_MAXINSNS).
constexpr size_t kMaxSteerOverrides = 2000;

// udpSteer(fd, steerGroup, overrides): replace the steering program of the group `fd` is a member
// of (any member will do; the program is the group's) with one for `steerGroup` members where the
// QPNs in `overrides` (a Uint32Array of QPN, member pairs; QPN below 2^24, member below
// steerGroup) go to their member and every other QPN to QPN mod steerGroup.
Napi::Value UdpSteer(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  const int fd = GetFd(env, info[0], "fd");
  const uint32_t group = static_cast<uint32_t>(GetInt(env, info[1], "steerGroup", kMinSteerGroup, kMaxSteerGroup));
  size_t words = 0;
  const uint32_t* o = GetUint32s(env, info[2], "overrides", &words);
  if (words % 2 != 0 || words / 2 > kMaxSteerOverrides) {
    throw Napi::RangeError::New(env, "overrides must be QPN, member pairs, at most " + std::to_string(kMaxSteerOverrides));
  }
  for (size_t i = 0; i < words; i += 2) {
    if (o[i] > 0xffffff || o[i + 1] >= group) throw Napi::RangeError::New(env, "override " + std::to_string(i / 2) + " names a QPN or member out of range");
  }
  const int err = AttachQpnSteering(fd, group, o, words / 2);
  if (err != 0) ThrowErrno(env, "setsockopt", err);
  return env.Undefined();
}

// udpBind(address, port, steerGroup?): a non-blocking, close-on-exec UDP socket bound to IPv4
// address:port (port 0 picks a free one), with IP_MTU_DISCOVER = IP_PMTUDISC_DO (see the top of
// this file). With steerGroup (an integer in 2..64; needs a fixed port) the socket sets
// SO_REUSEPORT before binding, so it joins (or starts) the group of sockets on address:port, and
// attaches the QPN steering program for a group of that size (see the top of this file).
Napi::Value UdpBind(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  if (!info[0].IsString()) throw Napi::TypeError::New(env, "address must be a dotted IPv4 string");
  const std::string text = info[0].As<Napi::String>().Utf8Value();
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  const uint16_t port = static_cast<uint16_t>(GetInt(env, info[1], "port", 0, 65535));
  addr.sin_port = htons(port);
  if (inet_pton(AF_INET, text.c_str(), &addr.sin_addr) != 1) {
    throw Napi::RangeError::New(env, "not a dotted IPv4 address: " + text);
  }
  const bool steer = !info[2].IsUndefined();
  const uint32_t group = steer ? static_cast<uint32_t>(GetInt(env, info[2], "steerGroup", kMinSteerGroup, kMaxSteerGroup)) : 0;
  if (steer && port == 0) {
    throw Napi::RangeError::New(env, "steerGroup needs a fixed port: with port 0 every member would get a different one");
  }
  const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) ThrowErrno(env, "socket", errno);
  const int pmtu = IP_PMTUDISC_DO;
  if (setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &pmtu, sizeof pmtu) != 0) {
    CloseAndThrowErrno(env, fd, "setsockopt");
  }
  const int one = 1;
  if (steer && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
    CloseAndThrowErrno(env, fd, "setsockopt");
  }
  if (bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    CloseAndThrowErrno(env, fd, "bind");
  }
  if (steer) {
    const int err = AttachQpnSteering(fd, group);
    if (err != 0) {
      close(fd);
      ThrowErrno(env, "setsockopt", err);
    }
  }
  return Napi::Number::New(env, fd);
}

// udpLocalAddress(fd): { ipv4, port } the socket is bound to.
Napi::Value UdpLocalAddress(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  sockaddr_in addr{};
  socklen_t len = sizeof addr;
  if (getsockname(GetFd(env, info[0], "fd"), reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ThrowErrno(env, "getsockname", errno);
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("ipv4", Napi::Number::New(env, ntohl(addr.sin_addr.s_addr)));
  out.Set("port", Napi::Number::New(env, ntohs(addr.sin_port)));
  return out;
}

// udpSendMany(fd, data, desc, count): send up to `count` datagrams; returns how many the kernel
// took (0 if the socket buffer is full). The rest stay for the next call.
Napi::Value UdpSendMany(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  const int fd = GetFd(env, info[0], "fd");
  const Batch b = BatchArgs(info);
  if (b.count == 0) return Napi::Number::New(env, 0);
  scratch.Reserve(b.count);
  for (size_t i = 0; i < b.count; i++) {
    const uint32_t* d = b.desc + i * kDescWords;
    if (d[3] > 65535) throw Napi::RangeError::New(env, "port of datagram " + std::to_string(i) + " is above 65535");
    sockaddr_in& a = scratch.addrs[i];
    a = sockaddr_in{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(d[2]);
    a.sin_port = htons(static_cast<uint16_t>(d[3]));
    scratch.iovs[i] = iovec{b.data.data + d[0], d[1]};
    mmsghdr& m = scratch.msgs[i];
    m = mmsghdr{};
    m.msg_hdr.msg_name = &a;
    m.msg_hdr.msg_namelen = sizeof a;
    m.msg_hdr.msg_iov = &scratch.iovs[i];
    m.msg_hdr.msg_iovlen = 1;
  }
  int n;
  do {
    n = sendmmsg(fd, scratch.msgs.data(), static_cast<unsigned>(b.count), MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return Napi::Number::New(env, 0);
  if (n < 0) ThrowErrno(env, "sendmmsg", errno);
  return Napi::Number::New(env, n);
}

// udpRecvMany(fd, data, desc, count): receive up to `count` datagrams into their slots and
// rewrite their desc entries; returns how many arrived (0 if none was waiting).
Napi::Value UdpRecvMany(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  const int fd = GetFd(env, info[0], "fd");
  const Batch b = BatchArgs(info);
  if (b.count == 0) return Napi::Number::New(env, 0);
  scratch.Reserve(b.count);
  for (size_t i = 0; i < b.count; i++) {
    const uint32_t* d = b.desc + i * kDescWords;
    scratch.iovs[i] = iovec{b.data.data + d[0], d[1]};
    mmsghdr& m = scratch.msgs[i];
    m = mmsghdr{};
    m.msg_hdr.msg_name = &scratch.addrs[i];
    m.msg_hdr.msg_namelen = sizeof(sockaddr_in);
    m.msg_hdr.msg_iov = &scratch.iovs[i];
    m.msg_hdr.msg_iovlen = 1;
  }
  int n;
  do {
    n = recvmmsg(fd, scratch.msgs.data(), static_cast<unsigned>(b.count), MSG_DONTWAIT, nullptr);
  } while (n < 0 && errno == EINTR);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return Napi::Number::New(env, 0);
  if (n < 0) ThrowErrno(env, "recvmmsg", errno);
  for (int i = 0; i < n; i++) {
    uint32_t* d = b.desc + static_cast<size_t>(i) * kDescWords;
    const mmsghdr& m = scratch.msgs[i];
    const sockaddr_in& a = scratch.addrs[i];
    d[1] = m.msg_len;
    d[2] = ntohl(a.sin_addr.s_addr);
    d[3] = ntohs(a.sin_port) | ((m.msg_hdr.msg_flags & MSG_TRUNC) != 0 ? kTruncated : 0);
  }
  return Napi::Number::New(env, n);
}

}  // namespace

void RegisterUdp(Napi::Env env, Napi::Object exports) {
  exports.Set("udpBind", Napi::Function::New(env, UdpBind, "udpBind"));
  exports.Set("udpSteer", Napi::Function::New(env, UdpSteer, "udpSteer"));
  exports.Set("udpLocalAddress", Napi::Function::New(env, UdpLocalAddress, "udpLocalAddress"));
  exports.Set("udpSendMany", Napi::Function::New(env, UdpSendMany, "udpSendMany"));
  exports.Set("udpRecvMany", Napi::Function::New(env, UdpRecvMany, "udpRecvMany"));
  exports.Set("socketSetOption", Napi::Function::New(env, SocketSetOption, "socketSetOption"));
  exports.Set("socketGetOption", Napi::Function::New(env, SocketGetOption, "socketGetOption"));
  exports.Set("rawIpv4Open", Napi::Function::New(env, RawIpv4Open, "rawIpv4Open"));
  Napi::Object udp = Napi::Object::New(env);
  udp.Set("DESC_WORDS", Napi::Number::New(env, kDescWords));
  udp.Set("TRUNCATED", Napi::Number::New(env, kTruncated));
  udp.Set("MAX_BATCH", Napi::Number::New(env, static_cast<double>(kMaxBatch)));
  Napi::Object pmtu = Napi::Object::New(env);
  pmtu.Set("DONT", Napi::Number::New(env, IP_PMTUDISC_DONT));
  pmtu.Set("WANT", Napi::Number::New(env, IP_PMTUDISC_WANT));
  pmtu.Set("DO", Napi::Number::New(env, IP_PMTUDISC_DO));
  pmtu.Set("PROBE", Napi::Number::New(env, IP_PMTUDISC_PROBE));
  udp.Set("PMTUDISC", pmtu);
  exports.Set("udp", udp);
}

}  // namespace vrdma
