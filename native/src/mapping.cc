// Mapping a file over part of a device's shared Wasm memory (DESIGN.md "Memory model"): under
// vhost-user the front end's guest RAM files are mapped over the guest RAM window, so the VMM's
// pages and the Wasm view are the same pages (zero copy). A shared WebAssembly.Memory is
// reserved up front and never moves, so an address inside it stays valid for its lifetime.
//
// Mapping is done in two steps so a refused file never damages the memory: map the file anywhere
// (this is where a bad fd, offset or mode fails), then mremap(MREMAP_FIXED) it over the target,
// which replaces the old pages in one step. Unmapping puts private anonymous zero pages back
// (MAP_FIXED), so the range stays readable and writable to Wasm and never faults.
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "common.h"
#include "modules.h"

namespace vrdma {

namespace {

size_t PageBytes() {
  static const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return page;
}

/** The target range: the start of `view`, `length` bytes, page-aligned, inside the view. */
uint8_t* TargetArg(const Napi::Env& env, const Napi::Value& view, const Napi::Value& lengthArg, size_t* lengthBytes) {
  const ByteSpan span = GetBytes(env, view, "view");
  if (!span.shared) {
    throw Napi::TypeError::New(env, "view must be over a SharedArrayBuffer (a shared WebAssembly.Memory's buffer)");
  }
  const size_t page = PageBytes();
  const auto length = static_cast<size_t>(GetInt(env, lengthArg, "length", 1, kMaxSafeInt));
  if (reinterpret_cast<uintptr_t>(span.data) % page != 0) {
    throw Napi::RangeError::New(env, "view must start on a page boundary (" + std::to_string(page) + " bytes)");
  }
  if (length % page != 0) {
    throw Napi::RangeError::New(env, "length must be a multiple of the page size (" + std::to_string(page) + " bytes)");
  }
  CheckRange(env, span.lenBytes, 0, length, "mapping");
  *lengthBytes = length;
  return span.data;
}

// memfdCreate(name): an anonymous memory file (MFD_CLOEXEC), as a VMM backs guest RAM with.
Napi::Value MemfdCreate(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  if (!info[0].IsString()) throw Napi::TypeError::New(env, "name must be a string");
  const std::string name = info[0].As<Napi::String>().Utf8Value();
  const int fd = memfd_create(name.c_str(), MFD_CLOEXEC);
  if (fd < 0) ThrowErrno(env, "memfd_create", errno);
  return Napi::Number::New(env, fd);
}

// mapIntoMemory(view, fd, fileOffset, length): map fd[fileOffset, +length) MAP_SHARED, read and
// write, over the first `length` bytes of `view`.
Napi::Value MapIntoMemory(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  size_t length = 0;
  uint8_t* target = TargetArg(env, info[0], info[3], &length);
  const int fd = GetFd(env, info[1], "fd");
  const auto fileOffset = static_cast<uint64_t>(GetInt(env, info[2], "fileOffset", 0, kMaxSafeInt));
  if (fileOffset % PageBytes() != 0) throw Napi::RangeError::New(env, "fileOffset must be a multiple of the page size");
  struct stat st {};
  if (fstat(fd, &st) != 0) ThrowErrno(env, "fstat", errno);
  // Touching a page past the end of a file raises SIGBUS, which would kill the process from
  // inside a Wasm kernel: refuse a mapping that reaches past the file as it is now.
  if (S_ISREG(st.st_mode) && static_cast<uint64_t>(st.st_size) < fileOffset + length) {
    throw Napi::RangeError::New(env, "file is " + std::to_string(st.st_size) + " bytes; mapping [" +
                                         std::to_string(fileOffset) + ", +" + std::to_string(length) +
                                         ") would reach past its end");
  }
  void* staged = mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, static_cast<off_t>(fileOffset));
  if (staged == MAP_FAILED) ThrowErrno(env, "mmap", errno);
  void* placed = mremap(staged, length, length, MREMAP_MAYMOVE | MREMAP_FIXED, target);
  if (placed == MAP_FAILED) {
    const int err = errno;
    munmap(staged, length);
    ThrowErrno(env, "mremap", err);
  }
  return env.Undefined();
}

// unmapFromMemory(view, length): replace the first `length` bytes of `view` with private zero
// pages, ending a mapIntoMemory (or zeroing and releasing ordinary memory pages).
Napi::Value UnmapFromMemory(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  size_t length = 0;
  uint8_t* target = TargetArg(env, info[0], info[1], &length);
  void* placed = mmap(target, length, PROT_READ | PROT_WRITE, MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (placed == MAP_FAILED) ThrowErrno(env, "mmap", errno);
  return env.Undefined();
}

Napi::Value PageSize(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(PageBytes()));
}

}  // namespace

void RegisterMapping(Napi::Env env, Napi::Object exports) {
  exports.Set("memfdCreate", Napi::Function::New(env, MemfdCreate, "memfdCreate"));
  exports.Set("mapIntoMemory", Napi::Function::New(env, MapIntoMemory, "mapIntoMemory"));
  exports.Set("unmapFromMemory", Napi::Function::New(env, UnmapFromMemory, "unmapFromMemory"));
  exports.Set("pageSize", Napi::Function::New(env, PageSize, "pageSize"));
}

}  // namespace vrdma
