// FdWatch: input readiness of a file descriptor on the event loop of the thread that made it
// (libuv's uv_poll, level-triggered), for a socket the addon opened itself, which Node cannot
// watch. `new FdWatch(fd, onReadable)` calls onReadable() from the loop, as a callback Node makes
// (microtasks run after it, an exception is an uncaught exception), while the fd has input the
// callback leaves unread; stop() ends it. Unlike a thread blocked in poll(2) (src/net/readiness.ts)
// it costs no thread and no message per burst. A watch still running when its thread's
// environment ends (a worker terminated) is stopped by a cleanup hook, and a callback that finds
// JavaScript no longer runnable returns without touching it.
#include <uv.h>

#include "common.h"
#include "modules.h"

namespace vrdma {

namespace {

struct Watch {
  uv_poll_t poll{};
  napi_env env = nullptr;
  napi_ref callback = nullptr;
  napi_async_context context = nullptr;
  bool stopped = false;
  // The JavaScript object's pointer to this watch, cleared when the watch is freed first (its
  // environment ended before the object was collected).
  Watch** owner = nullptr;
};

void Closed(uv_handle_t* handle) {
  Watch* w = static_cast<Watch*>(handle->data);
  if (w->owner != nullptr) *w->owner = nullptr;
  delete w;
}

void Cleanup(void* arg);

// Stop watching and free the watch once libuv has closed its handle. `teardown`: the environment
// is going away (no more JavaScript references to drop).
void StopWatch(Watch* w, bool teardown) {
  if (w->stopped) return;
  w->stopped = true;
  uv_poll_stop(&w->poll);
  if (!teardown) {
    napi_remove_env_cleanup_hook(w->env, Cleanup, w);
    napi_async_destroy(w->env, w->context);
    napi_delete_reference(w->env, w->callback);
  }
  uv_close(reinterpret_cast<uv_handle_t*>(&w->poll), Closed);
}

void Cleanup(void* arg) {
  StopWatch(static_cast<Watch*>(arg), true);
}

void OnPoll(uv_poll_t* handle, int status, int /*events*/) {
  Watch* w = static_cast<Watch*>(handle->data);
  if (w->stopped) return;
  napi_env env = w->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value fn;
  napi_value recv;
  napi_value result;
  // An fd in error (status < 0) is reported as readable too: the reader's recvmmsg says why.
  (void)status;
  // MakeCallback wants an object as `this`: the global one.
  if (napi_get_reference_value(env, w->callback, &fn) == napi_ok && fn != nullptr && napi_get_global(env, &recv) == napi_ok) {
    if (napi_make_callback(env, w->context, recv, fn, 0, nullptr, &result) == napi_pending_exception) {
      napi_value error;
      if (napi_get_and_clear_last_exception(env, &error) == napi_ok) napi_fatal_exception(env, error);
    }
  }
  napi_close_handle_scope(env, scope);
}

class FdWatch : public Napi::ObjectWrap<FdWatch> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "FdWatch", {InstanceMethod("stop", &FdWatch::Stop)});
  }

  explicit FdWatch(const Napi::CallbackInfo& info) : Napi::ObjectWrap<FdWatch>(info) {
    const Napi::Env env = info.Env();
    const int fd = GetFd(env, info[0], "fd");
    if (!info[1].IsFunction()) throw Napi::TypeError::New(env, "onReadable must be a function");
    uv_loop_t* loop = nullptr;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) throw Napi::Error::New(env, "no event loop");
    auto* w = new Watch();
    w->env = env;
    w->poll.data = w;
    const int err = uv_poll_init(loop, &w->poll, fd);
    if (err != 0) {
      delete w;
      throw Napi::Error::New(env, std::string("uv_poll_init: ") + uv_strerror(err));
    }
    napi_create_reference(env, info[1], 1, &w->callback);
    napi_async_init(env, nullptr, Napi::String::New(env, "vrdma.FdWatch"), &w->context);
    napi_add_env_cleanup_hook(env, Cleanup, w);
    const int started = uv_poll_start(&w->poll, UV_READABLE, OnPoll);
    if (started != 0) {
      StopWatch(w, false);
      throw Napi::Error::New(env, std::string("uv_poll_start: ") + uv_strerror(started));
    }
    watch_ = w;
    w->owner = &watch_;
  }

  ~FdWatch() override {
    if (watch_ == nullptr) return;
    watch_->owner = nullptr;
    if (!watch_->stopped) StopWatch(watch_, false);
  }

 private:
  // stop(): no more callbacks; the fd is the caller's to close (after this).
  Napi::Value Stop(const Napi::CallbackInfo& info) {
    if (watch_ != nullptr) {
      watch_->owner = nullptr;
      StopWatch(watch_, false);
    }
    watch_ = nullptr;
    return info.Env().Undefined();
  }

  Watch* watch_ = nullptr;
};

}  // namespace

void RegisterFdWatch(Napi::Env env, Napi::Object exports) {
  exports.Set("FdWatch", FdWatch::Define(env));
}

}  // namespace vrdma
