#pragma once
// cluster::zk_store — the metadata_store of a cluster, kept in ZooKeeper (DESIGN.md §5), over
// the ZooKeeper C client (libzookeeper_mt, synchronous calls). The znode layout is Kafka's
// ZooKeeper-era layout: docs/format/zookeeper.md.
//
// Blocking: every method is a synchronous round trip to ZooKeeper and blocks the calling
// thread (the controller loop). A call is bounded: while the session is connected it returns
// when the server answers or the connection is declared lost (the client's receive timeout,
// 2/3 of zookeeper.session.timeout.ms); while the session is being re-established it waits at
// most session timeout + connection timeout, then throws zk_error.
//
// Errors: "expected" outcomes are results (missing node → nullopt / false, existing node on
// create → false, version mismatch on set → false). Everything else throws zk_error:
//   - a write whose connection was lost after it was sent (code zk_error::connection_loss):
//     the write may or may not have been applied; the caller must re-read.
//   - reads are retried on connection loss until the bound above, then throw.
//   - requests that never reached a session (expired / re-establishing) are retried on the
//     new session, since they cannot have been applied.
//
// Sessions: when ZooKeeper expires the session (e.g. the broker was paused past the session
// timeout), a background thread opens a new session, re-creates every ephemeral node made
// through create_ephemeral() (unless someone else created that path meanwhile — then it is
// reported as lost), re-arms every watch, calls each watch callback once (changes may have
// been missed) and then the on_session_reestablished callback.
//
// Threading: the metadata_store methods and the extra methods below may be called from one
// thread at a time (the controller loop). Watch and session callbacks run on the ZooKeeper
// client's completion thread (or the session thread) — never on the caller's loop. They must
// be short and must NOT call back into this store (a synchronous call from the completion
// thread deadlocks the client): post the event to your own loop and act there.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "cluster/metadata_store.h"

typedef struct _zhandle zhandle_t;  // from <zookeeper/zookeeper.h>

namespace varve::cluster {
namespace detail {
struct zk_watch;  // one registered watch (zk_store.cc)
}

// `zookeeper.connect` split into its parts: "h1:p1,h2:p2/chroot" → hosts "h1:p1,h2:p2",
// chroot "/chroot" ("" when absent). Throws std::invalid_argument on an empty host list or
// a malformed chroot ("/", "//x", trailing "/").
struct zk_connect_string {
  std::string hosts;
  std::string chroot;
};
zk_connect_string parse_zk_connect(const std::string& connect);

struct zk_options {
  std::string connect;                                      // zookeeper.connect
  std::chrono::milliseconds session_timeout{18000};         // zookeeper.session.timeout.ms
  std::chrono::milliseconds connection_timeout{18000};      // zookeeper.connection.timeout.ms
};

class zk_error : public std::runtime_error {
 public:
  static constexpr int connection_loss = -4;  // ZCONNECTIONLOSS
  zk_error(int code, const std::string& what) : std::runtime_error(what), code_(code) {}
  int code() const { return code_; }  // the ZooKeeper C client's error code (ZOK family)

 private:
  int code_;
};

class zk_store final : public metadata_store {
 public:
  // `path` is relative to the chroot, as in all methods.
  using watch_callback = std::function<void(const std::string& path)>;
  // Paths of ephemeral nodes that could not be re-created on the new session because the
  // path was already taken (e.g. /controller won by another broker).
  using session_callback = std::function<void(const std::vector<std::string>& lost_ephemerals)>;

  // Connects, creating the chroot (and its parents) if missing. Throws zk_error if no
  // session is established within options.connection_timeout.
  explicit zk_store(zk_options options);
  // Closes the session: the server deletes this session's ephemeral nodes at once.
  ~zk_store() override;
  zk_store(const zk_store&) = delete;
  zk_store& operator=(const zk_store&) = delete;

  // metadata_store (see metadata_store.h). children() is sorted; missing parent → empty.
  std::optional<store_node> get(const std::string& path) override;
  bool create(const std::string& path, const std::string& data) override;
  bool set(const std::string& path, const std::string& data, int32_t expected_version) override;
  bool remove_recursive(const std::string& path) override;  // also forgets ephemerals below
  std::vector<std::string> children(const std::string& path) override;

  // Creates an ephemeral node (missing parents are created persistent, empty). False if the
  // node exists (ZNODEEXISTS). On success the node is remembered and re-created after a
  // session expiry until remove_recursive() removes it.
  bool create_ephemeral(const std::string& path, const std::string& data);
  // Creates a persistent sequential node "<prefix><10-digit counter>" (parents created) and
  // returns its full path, e.g. /isr_change_notification/isr_change_0000000003.
  std::string create_sequential(const std::string& prefix, const std::string& data);

  // Calls `callback(path)` after the node's children change (also on creation/deletion of
  // the node itself). The callback runs only once the server has re-registered the watch,
  // so any change after it started fires it again; a callback means "re-read", several
  // changes may be folded into one call, and spurious calls happen (after a reconnect or a
  // new session, when changes may have been missed).
  void watch_children(const std::string& path, watch_callback callback);
  // Same for the node's data: creation, deletion and every set() fire it.
  void watch_data(const std::string& path, watch_callback callback);
  // Called (on the session thread) after a new session replaced an expired one and
  // ephemerals and watches were restored.
  void on_session_reestablished(session_callback callback);

  // The current session, e.g. for tests that force its expiry by closing a second handle
  // attached to the same session. Password is 16 raw bytes.
  int64_t session_id() const;
  std::string session_password() const;
  // Number of sessions established after the first (i.e. expiries recovered from).
  int64_t session_reestablish_count() const { return reestablished_.load(); }

 private:
  // The C client's global watcher: session state changes of the current handle.
  static void session_event(zhandle_t* zh, int type, int state, const char* path, void* ctx);

  zhandle_t* open_session(const std::string& connect);  // waits for CONNECTED or throws
  void session_loop();
  void restore_after_expiry();
  void add_watch(const std::string& path, bool children, watch_callback callback);
  bool create_mode(const std::string& path, const std::string& data, int mode,
                   std::string* created);
  void ensure_parents(const std::string& path);
  int delete_tree(const std::string& path, bool top);
  // Runs `op(zh)` under the handle lock with the retry rules above; returns its ZOK-family
  // code for the caller to interpret.
  int call(const char* what, const std::string& path, bool idempotent,
           const std::function<int(zhandle_t*)>& op);
  // Waits until the current handle is connected; false at `until` or when stopping.
  bool wait_connected(std::unique_lock<std::mutex>& lock,
                      std::chrono::steady_clock::time_point until);

  // Constant after construction.
  zk_options options_;
  zk_connect_string connect_;

  // The handle is swapped only by the session thread, under an exclusive lock; API calls
  // hold it shared for the duration of one request.
  mutable std::shared_timed_mutex handle_mu_;
  zhandle_t* zh_ = nullptr;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  zhandle_t* current_zh_ = nullptr;  // GUARDED_BY(mu_): the handle session events count for
  int state_ = 0;                    // GUARDED_BY(mu_): last session state of current_zh_
  bool expired_ = false;             // GUARDED_BY(mu_)
  bool stopping_ = false;            // GUARDED_BY(mu_)
  std::map<std::string, std::string> ephemerals_;       // GUARDED_BY(mu_)
  std::vector<std::unique_ptr<detail::zk_watch>> watches_;  // GUARDED_BY(mu_), stable addresses
  session_callback session_callback_;                   // GUARDED_BY(mu_)
  std::atomic<int64_t> reestablished_{0};
  std::thread session_thread_;
};

}  // namespace varve::cluster
