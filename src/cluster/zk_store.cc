#ifndef THREADED
#define THREADED  // the synchronous API of libzookeeper_mt
#endif
#include "cluster/zk_store.h"

#include <zookeeper/zookeeper.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/log.h"

namespace varve::cluster {
namespace {
using clock = std::chrono::steady_clock;
constexpr size_t kInitialGetBuffer = 64 * 1024;

std::string zk_message(const char* what, const std::string& path, int rc) {
  return std::string("zookeeper ") + what + " " + path + ": " + zerror(rc) + " (" +
         std::to_string(rc) + ")";
}

[[noreturn]] void fail(const char* what, const std::string& path, int rc) {
  throw zk_error(rc, zk_message(what, path, rc));
}

// Absolute, no trailing slash (except "/"), no empty component.
void check_path(const std::string& path) {
  const bool ok = !path.empty() && path[0] == '/' && (path.size() == 1 || path.back() != '/') &&
                  path.find("//") == std::string::npos;
  if (!ok) throw std::invalid_argument("bad ZooKeeper path '" + path + "'");
}

std::string child_path(const std::string& parent, const std::string& name) {
  return parent == "/" ? "/" + name : parent + "/" + name;
}

// The client logs every reconnect attempt (dozens a second while ZooKeeper is down): forward
// at most one line a second, counting the rest. Its own timestamp prefix is dropped.
void zk_log(const char* message) {
  static std::atomic<int64_t> last_ms{0};
  static std::atomic<int64_t> suppressed{0};
  const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                          clock::now().time_since_epoch())
                          .count();
  int64_t last = last_ms.load();
  if (now - last < 1000 || !last_ms.compare_exchange_strong(last, now)) {
    suppressed.fetch_add(1);
    return;
  }
  std::string m(message ? message : "");
  if (auto pos = m.find("ZOO_"); pos != std::string::npos) m.erase(0, pos);
  while (!m.empty() && (m.back() == '\n' || m.back() == '\r')) m.pop_back();
  const int64_t skipped = suppressed.exchange(0);
  if (skipped > 0) {
    VLOG_WARN("zookeeper") << m << " (" << skipped << " client log lines suppressed)";
  } else {
    VLOG_WARN("zookeeper") << m;
  }
}

const char* state_name(int state) {
  if (state == ZOO_CONNECTED_STATE) return "connected";
  if (state == ZOO_CONNECTING_STATE) return "connecting";
  if (state == ZOO_ASSOCIATING_STATE) return "associating";
  if (state == ZOO_EXPIRED_SESSION_STATE) return "expired";
  if (state == ZOO_AUTH_FAILED_STATE) return "auth-failed";
  if (state == ZOO_READONLY_STATE) return "read-only";
  return "not-connected";
}
}  // namespace

zk_connect_string parse_zk_connect(const std::string& connect) {
  zk_connect_string out;
  const auto slash = connect.find('/');
  out.hosts = connect.substr(0, slash);
  if (slash != std::string::npos) {
    out.chroot = connect.substr(slash);
    if (out.chroot == "/") out.chroot.clear();  // "host:port/" means no chroot
    else check_path(out.chroot);
  }
  if (out.hosts.empty()) throw std::invalid_argument("zookeeper.connect has no host: '" + connect + "'");
  for (size_t start = 0; start <= out.hosts.size();) {
    size_t comma = out.hosts.find(',', start);
    if (comma == std::string::npos) comma = out.hosts.size();
    if (comma == start) throw std::invalid_argument("zookeeper.connect has an empty host: '" + connect + "'");
    start = comma + 1;
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Watches. A zk_watch lives until the store is destroyed (after the handle is closed), so
// the C client may hold a pointer to it as watcher context at any time.

namespace detail {
struct zk_watch {
  std::string path;
  bool children = false;
  zk_store::watch_callback callback;
};
}  // namespace detail

namespace {
using detail::zk_watch;

void path_event(zhandle_t* zh, int type, int state, const char* path, void* ctx);

struct rearm_context {
  zhandle_t* zh;
  zk_watch* watch;
};

void run_callback(zk_watch* w) {
  try {
    w->callback(w->path);
  } catch (const std::exception& e) {
    VLOG_ERROR("zookeeper") << "watch callback for " << w->path << " threw: " << e.what();
  }
}

void rearm_async(zhandle_t* zh, zk_watch* w);

// The re-arm chain runs on the completion thread (a synchronous call there would deadlock)
// and calls the owner only once the server has registered the new watch: any change after
// the callback started fires it again; changes before are seen by the owner's re-read.
void exists_rearmed(int rc, const struct Stat*, const void* data) {
  auto* ctx = static_cast<const rearm_context*>(data);
  zk_watch* w = ctx->watch;
  zhandle_t* zh = ctx->zh;
  delete ctx;
  // A children watch fell back to an exists watch because the node was gone. If the node came
  // back in between (ZOK), that exists watch only covers its data: go back to children.
  if (w->children && rc == ZOK) return rearm_async(zh, w);
  if (rc != ZOK && rc != ZNONODE) {
    VLOG_WARN("zookeeper") << "re-arming the watch on " << w->path << ": " << zerror(rc);
  }
  run_callback(w);
}

void children_rearmed(int rc, const struct String_vector*, const void* data) {
  auto* ctx = static_cast<const rearm_context*>(data);
  if (rc == ZNONODE) {
    // Watch for the node's creation instead.
    if (zoo_awexists(ctx->zh, ctx->watch->path.c_str(), path_event, ctx->watch, exists_rearmed,
                     ctx) == ZOK)
      return;  // ctx now belongs to exists_rearmed
    rc = ZINVALIDSTATE;
  }
  if (rc != ZOK) {
    VLOG_WARN("zookeeper") << "re-arming the watch on " << ctx->watch->path << ": " << zerror(rc);
  }
  zk_watch* w = ctx->watch;
  delete ctx;
  run_callback(w);
}

void rearm_async(zhandle_t* zh, zk_watch* w) {
  auto* ctx = new rearm_context{zh, w};
  const int rc =
      w->children
          ? zoo_awget_children(zh, w->path.c_str(), path_event, w, children_rearmed, ctx)
          : zoo_awexists(zh, w->path.c_str(), path_event, w, exists_rearmed, ctx);
  if (rc != ZOK) {  // not even queued (handle closing or expired): still tell the owner
    delete ctx;
    run_callback(w);
  }
}

void path_event(zhandle_t* zh, int type, int state, const char* path, void* ctx) {
  if (type == ZOO_SESSION_EVENT || type == ZOO_NOTWATCHING_EVENT) return;
  rearm_async(zh, static_cast<zk_watch*>(ctx));
}

// Synchronous arming (caller's thread or the session thread, never the completion thread).
int arm_watch(zhandle_t* zh, zk_watch* w) {
  struct Stat stat;
  if (!w->children) {
    int rc = zoo_wexists(zh, w->path.c_str(), path_event, w, &stat);
    return rc == ZNONODE ? ZOK : rc;  // an exists watch on a missing node fires on creation
  }
  for (int attempt = 0; attempt < 5; ++attempt) {
    struct String_vector names = {0, nullptr};
    int rc = zoo_wget_children(zh, w->path.c_str(), path_event, w, &names);
    if (rc == ZOK) deallocate_String_vector(&names);
    if (rc != ZNONODE) return rc;
    rc = zoo_wexists(zh, w->path.c_str(), path_event, w, &stat);
    if (rc == ZNONODE) return ZOK;  // armed for the node's creation
    if (rc != ZOK) return rc;
    // created in between: arm the children watch again
  }
  return ZOK;
}
}  // namespace

// ---------------------------------------------------------------------------------------
// Session

void zk_store::session_event(zhandle_t* zh, int type, int state, const char*, void* ctx) {
  if (type != ZOO_SESSION_EVENT) return;
  auto* self = static_cast<zk_store*>(ctx);
  std::lock_guard lock(self->mu_);
  if (zh != self->current_zh_) return;  // a handle being closed or replaced
  if (state != self->state_) {
    if (state == ZOO_CONNECTED_STATE) {
      VLOG_INFO("zookeeper") << "session connected id=0x" << std::hex
                             << zoo_client_id(zh)->client_id;
    } else {
      VLOG_WARN("zookeeper") << "session state " << state_name(state);
    }
  }
  // Back on the same session after a disconnect: the client restores the watches it had
  // registered, but a re-arm that failed while disconnected left its watch unregistered.
  // Re-arm all (idempotent) and let owners re-read.
  const bool reconnected = state == ZOO_CONNECTED_STATE && self->state_ != 0 &&
                           self->state_ != ZOO_CONNECTED_STATE;
  self->state_ = state;
  if (state == ZOO_EXPIRED_SESSION_STATE) self->expired_ = true;
  if (reconnected) {
    for (auto& w : self->watches_) rearm_async(zh, w.get());
  }
  self->cv_.notify_all();
}

bool zk_store::wait_connected(std::unique_lock<std::mutex>& lock, clock::time_point until) {
  return cv_.wait_until(lock, until, [&] { return stopping_ || state_ == ZOO_CONNECTED_STATE; }) &&
         !stopping_;
}

zhandle_t* zk_store::open_session(const std::string& connect) {
  std::unique_lock lock(mu_);
  if (stopping_) throw zk_error(ZCLOSING, "zookeeper: store is closing");
  // mu_ is held across init so that the first session event waits until current_zh_ is set.
  zhandle_t* zh = zookeeper_init2(connect.c_str(), &zk_store::session_event,
                                  static_cast<int>(options_.session_timeout.count()), nullptr,
                                  this, 0, zk_log);
  if (zh == nullptr) {
    throw zk_error(ZSYSTEMERROR, "zookeeper: cannot create a client for '" + connect +
                                     "': " + std::strerror(errno));
  }
  current_zh_ = zh;
  state_ = 0;
  expired_ = false;
  const bool ok = wait_connected(lock, clock::now() + options_.connection_timeout);
  const int state = state_;
  if (!ok) {
    current_zh_ = nullptr;
    lock.unlock();
    zookeeper_close(zh);
    throw zk_error(ZOPERATIONTIMEOUT,
                   "zookeeper: no session with '" + connect + "' within " +
                       std::to_string(options_.connection_timeout.count()) +
                       " ms (zookeeper.connection.timeout.ms), last state " + state_name(state));
  }
  return zh;
}

zk_store::zk_store(zk_options options) : options_(std::move(options)) {
  connect_ = parse_zk_connect(options_.connect);
  zoo_set_debug_level(ZOO_LOG_LEVEL_WARN);
  if (!connect_.chroot.empty()) {
    // The C client requires the chroot to exist: create it through a handle without one.
    zhandle_t* boot = open_session(connect_.hosts);
    int rc = ZOK;
    for (size_t pos = 1; rc == ZOK || rc == ZNODEEXISTS;) {
      pos = connect_.chroot.find('/', pos);
      const std::string prefix = connect_.chroot.substr(0, pos);
      rc = zoo_create(boot, prefix.c_str(), "", 0, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, nullptr,
                      0);
      if (pos == std::string::npos) break;
      ++pos;
    }
    {
      std::lock_guard lock(mu_);
      current_zh_ = nullptr;
    }
    zookeeper_close(boot);
    if (rc != ZOK && rc != ZNODEEXISTS) fail("create chroot", connect_.chroot, rc);
  }
  zh_ = open_session(connect_.hosts + connect_.chroot);
  session_thread_ = std::thread([this] { session_loop(); });
}

zk_store::~zk_store() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (session_thread_.joinable()) session_thread_.join();
  std::unique_lock handle_lock(handle_mu_);
  if (zh_ != nullptr) {
    {
      std::lock_guard lock(mu_);
      current_zh_ = nullptr;
    }
    zookeeper_close(zh_);  // joins the client's threads: no callback runs after this
    zh_ = nullptr;
  }
}

void zk_store::session_loop() {
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return stopping_ || expired_; });
    if (stopping_) return;
    lock.unlock();
    restore_after_expiry();
    lock.lock();
  }
}

void zk_store::restore_after_expiry() {
  VLOG_WARN("zookeeper") << "session expired; opening a new session";
  std::vector<std::string> lost;
  std::vector<zk_watch*> watches;
  {
    std::unique_lock handle_lock(handle_mu_);
    {
      std::lock_guard lock(mu_);
      current_zh_ = nullptr;
    }
    zookeeper_close(zh_);  // not under mu_: its callbacks take mu_
    zh_ = nullptr;
    for (;;) {
      try {
        zh_ = open_session(connect_.hosts + connect_.chroot);
        break;
      } catch (const zk_error& e) {
        std::unique_lock lock(mu_);
        if (stopping_) return;
        VLOG_WARN("zookeeper") << e.what() << "; retrying";
        cv_.wait_for(lock, std::chrono::milliseconds(200), [&] { return stopping_; });
        if (stopping_) return;
      }
    }
    std::map<std::string, std::string> ephemerals;
    {
      std::lock_guard lock(mu_);
      ephemerals = ephemerals_;
      for (auto& w : watches_) watches.push_back(w.get());
    }
    for (const auto& [path, data] : ephemerals) {
      int rc = zoo_create(zh_, path.c_str(), data.data(), static_cast<int>(data.size()),
                          &ZOO_OPEN_ACL_UNSAFE, ZOO_EPHEMERAL, nullptr, 0);
      if (rc == ZOK) continue;
      VLOG_WARN("zookeeper") << "ephemeral " << path << " not re-created: " << zerror(rc);
      lost.push_back(path);
      std::lock_guard lock(mu_);
      ephemerals_.erase(path);
    }
    for (zk_watch* w : watches) {
      if (int rc = arm_watch(zh_, w); rc != ZOK) {
        VLOG_WARN("zookeeper") << "watch on " << w->path << " not re-armed: " << zerror(rc);
      }
    }
  }
  reestablished_.fetch_add(1);
  VLOG_INFO("zookeeper") << "session re-established; " << lost.size() << " ephemeral(s) lost";
  for (zk_watch* w : watches) w->callback(w->path);  // changes may have been missed
  session_callback cb;
  {
    std::lock_guard lock(mu_);
    cb = session_callback_;
  }
  if (cb) cb(lost);
}

int64_t zk_store::session_id() const {
  std::shared_lock lock(handle_mu_);
  return zh_ ? zoo_client_id(zh_)->client_id : 0;
}

std::string zk_store::session_password() const {
  std::shared_lock lock(handle_mu_);
  if (!zh_) return {};
  const clientid_t* id = zoo_client_id(zh_);
  return std::string(id->passwd, sizeof(id->passwd));
}

void zk_store::on_session_reestablished(session_callback callback) {
  std::lock_guard lock(mu_);
  session_callback_ = std::move(callback);
}

// ---------------------------------------------------------------------------------------
// Requests

int zk_store::call(const char* what, const std::string& path, bool idempotent,
                   const std::function<int(zhandle_t*)>& op) {
  const auto deadline = clock::now() + options_.session_timeout + options_.connection_timeout;
  for (;;) {
    int rc;
    {
      std::shared_lock handle_lock(handle_mu_, std::defer_lock);
      if (!handle_lock.try_lock_until(deadline))
        throw zk_error(ZOPERATIONTIMEOUT, zk_message(what, path, ZOPERATIONTIMEOUT) +
                                              ": no ZooKeeper session");
      rc = op(zh_);
    }
    // Never sent on a live session, so certainly not applied: safe to repeat.
    const bool not_applied = rc == ZINVALIDSTATE || rc == ZSESSIONEXPIRED || rc == ZCLOSING;
    const bool lost = rc == ZCONNECTIONLOSS || rc == ZOPERATIONTIMEOUT;
    if (!not_applied && !(lost && idempotent)) return rc;
    if (clock::now() >= deadline) fail(what, path, rc);
    // The session event may trail the failed request: pause briefly, then wait for a session.
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    std::unique_lock lock(mu_);
    if (!wait_connected(lock, deadline)) fail(what, path, rc);
  }
}

std::optional<store_node> zk_store::get(const std::string& path) {
  check_path(path);
  std::vector<char> buffer(kInitialGetBuffer);
  for (;;) {
    struct Stat stat;
    int len = 0;
    const int rc = call("get", path, true, [&](zhandle_t* zh) {
      len = static_cast<int>(buffer.size());
      return zoo_get(zh, path.c_str(), 0, buffer.data(), &len, &stat);
    });
    if (rc == ZNONODE) return std::nullopt;
    if (rc != ZOK) fail("get", path, rc);
    if (stat.dataLength > static_cast<int>(buffer.size())) {
      buffer.resize(static_cast<size_t>(stat.dataLength));  // grew; read again
      continue;
    }
    store_node node;
    if (len > 0) node.data.assign(buffer.data(), static_cast<size_t>(len));
    node.version = stat.version;
    return node;
  }
}

void zk_store::ensure_parents(const std::string& path) {
  for (size_t pos = path.find('/', 1); pos != std::string::npos; pos = path.find('/', pos + 1)) {
    const std::string parent = path.substr(0, pos);
    // Creating a parent that may exist is idempotent, so connection losses are retried.
    const int rc = call("create", parent, true, [&](zhandle_t* zh) {
      return zoo_create(zh, parent.c_str(), "", 0, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, nullptr,
                        0);
    });
    if (rc != ZOK && rc != ZNODEEXISTS) fail("create", parent, rc);
  }
}

bool zk_store::create_mode(const std::string& path, const std::string& data, int mode,
                           std::string* created) {
  check_path(path);
  if (path == "/") return false;
  std::vector<char> name(path.size() + 32);
  for (int attempt = 0;; ++attempt) {
    const int rc = call("create", path, false, [&](zhandle_t* zh) {
      return zoo_create(zh, path.c_str(), data.data(), static_cast<int>(data.size()),
                        &ZOO_OPEN_ACL_UNSAFE, mode, name.data(), static_cast<int>(name.size()));
    });
    if (rc == ZOK) {
      if (created) *created = name.data();
      return true;
    }
    if (rc == ZNODEEXISTS) return false;
    if (rc == ZNONODE && attempt == 0) {
      ensure_parents(path);
      continue;
    }
    fail("create", path, rc);
  }
}

bool zk_store::create(const std::string& path, const std::string& data) {
  return create_mode(path, data, ZOO_PERSISTENT, nullptr);
}

bool zk_store::create_ephemeral(const std::string& path, const std::string& data) {
  if (!create_mode(path, data, ZOO_EPHEMERAL, nullptr)) return false;
  std::lock_guard lock(mu_);
  ephemerals_[path] = data;
  return true;
}

std::string zk_store::create_sequential(const std::string& prefix, const std::string& data) {
  std::string created;
  if (!create_mode(prefix, data, ZOO_PERSISTENT_SEQUENTIAL, &created))
    throw zk_error(ZNODEEXISTS, zk_message("create_sequential", prefix, ZNODEEXISTS));
  return created;
}

bool zk_store::set(const std::string& path, const std::string& data, int32_t expected_version) {
  check_path(path);
  const int rc = call("set", path, false, [&](zhandle_t* zh) {
    return zoo_set(zh, path.c_str(), data.data(), static_cast<int>(data.size()),
                   expected_version < 0 ? -1 : expected_version);
  });
  if (rc == ZOK) return true;
  if (rc == ZBADVERSION || rc == ZNONODE) return false;
  fail("set", path, rc);
}

std::vector<std::string> zk_store::children(const std::string& path) {
  check_path(path);
  std::vector<std::string> out;
  const int rc = call("children", path, true, [&](zhandle_t* zh) {
    out.clear();
    struct String_vector names = {0, nullptr};
    const int r = zoo_get_children(zh, path.c_str(), 0, &names);
    if (r == ZOK) {
      for (int32_t i = 0; i < names.count; ++i) out.emplace_back(names.data[i]);
      deallocate_String_vector(&names);
    }
    return r;
  });
  if (rc == ZNONODE) return {};
  if (rc != ZOK) fail("children", path, rc);
  std::sort(out.begin(), out.end());
  return out;
}

// Deletes children first; a concurrent create under the node (ZNOTEMPTY) restarts the pass.
int zk_store::delete_tree(const std::string& path, bool top) {
  for (int attempt = 0; attempt < 10; ++attempt) {
    for (const auto& name : children(path)) {
      const int rc = delete_tree(child_path(path, name), false);
      if (rc != ZOK && rc != ZNONODE) return rc;
    }
    // Below the top a repeated delete is harmless (ZNONODE is success there).
    const int rc = call("delete", path, !top, [&](zhandle_t* zh) {
      return zoo_delete(zh, path.c_str(), -1);
    });
    if (rc != ZNOTEMPTY) return rc;
  }
  return ZNOTEMPTY;
}

bool zk_store::remove_recursive(const std::string& path) {
  check_path(path);
  if (path == "/") throw std::invalid_argument("zk_store: refusing to remove the root");
  const int rc = delete_tree(path, true);
  {
    std::lock_guard lock(mu_);
    for (auto it = ephemerals_.begin(); it != ephemerals_.end();) {
      const bool below = it->first == path || it->first.rfind(path + "/", 0) == 0;
      it = below ? ephemerals_.erase(it) : std::next(it);
    }
  }
  if (rc == ZOK) return true;
  if (rc == ZNONODE) return false;
  fail("delete", path, rc);
}

void zk_store::add_watch(const std::string& path, bool children, watch_callback callback) {
  check_path(path);
  zk_watch* w;
  {
    auto owned = std::make_unique<zk_watch>(zk_watch{path, children, std::move(callback)});
    w = owned.get();
    std::lock_guard lock(mu_);
    watches_.push_back(std::move(owned));
  }
  const int rc = call("watch", path, true, [&](zhandle_t* zh) { return arm_watch(zh, w); });
  if (rc != ZOK) fail("watch", path, rc);
}

void zk_store::watch_children(const std::string& path, watch_callback callback) {
  add_watch(path, true, std::move(callback));
}

void zk_store::watch_data(const std::string& path, watch_callback callback) {
  add_watch(path, false, std::move(callback));
}

}  // namespace varve::cluster
