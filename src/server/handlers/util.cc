#include "server/handlers/util.h"

#include <asio/this_coro.hpp>
#include <optional>

#include "common/log.h"

namespace varve::server::handlers {
using protocol::error_code;
namespace {

// Lives on the caller's loop; every field is touched only there.
struct join_state {
  explicit join_state(asio::any_io_executor ex) : done(ex) {}
  asio::steady_timer done;
  size_t pending = 0;
  std::exception_ptr error;
};

void note_finished(const std::shared_ptr<join_state>& st, std::exception_ptr err) {
  if (err && !st->error) st->error = err;
  if (--st->pending == 0) st->done.cancel();
}

void start_remote(broker& b, unsigned shard, std::function<void()>* fn,
                  std::shared_ptr<join_state> st, asio::any_io_executor home) {
  asio::post(b.shards().loop(shard), [fn, st = std::move(st), home]() mutable {
    std::exception_ptr err;
    try {
      (*fn)();
    } catch (...) {
      err = std::current_exception();
    }
    asio::post(home, [st = std::move(st), err] { note_finished(st, err); });
  });
}

std::exception_ptr run_inline(std::function<void()>& fn) {
  try {
    fn();
  } catch (...) {
    return std::current_exception();
  }
  return nullptr;
}
}  // namespace

namespace {
// Shared between a waiting request and the partition it waits on; touched only on the
// request's own loop (wake-ups are posted there).
struct commit_wait {
  explicit commit_wait(asio::any_io_executor ex) : timer(ex) {}
  bool notified = false;
  asio::steady_timer timer;
};

// On the partition's loop: the outcome if decided, else registers a wake-up.
std::optional<error_code> committed_or_wait(replication::partition* p, int64_t required,
                                            int32_t epoch, std::weak_ptr<commit_wait> weak,
                                            asio::any_io_executor home) {
  if (!p) return error_code::not_leader_or_follower;
  bool done = false;
  const error_code e = p->acks_all_status(required, epoch, &done);
  if (done) return e;
  p->add_waiter(weak, [weak, home] {
    asio::post(home, [weak] {
      if (auto w = weak.lock()) {
        w->notified = true;
        w->timer.cancel();
      }
    });
  });
  return std::nullopt;
}
}  // namespace

asio::awaitable<error_code> wait_for_commit(broker& b, replication::topic_partition tp,
                                            int64_t required_offset, int32_t epoch_at_append,
                                            std::chrono::steady_clock::time_point deadline) {
  const auto home = co_await asio::this_coro::executor;
  bool counted = false;
  std::optional<error_code> result;
  for (;;) {
    auto wait = std::make_shared<commit_wait>(home);
    wait->timer.expires_at(deadline);
    std::weak_ptr<commit_wait> weak = wait;
    auto op = on_partition(b, tp, [required_offset, epoch_at_append, weak, home](replication::partition* p) {
      return committed_or_wait(p, required_offset, epoch_at_append, weak, home);
    });
    result = co_await std::move(op);
    if (result) break;
    if (std::chrono::steady_clock::now() >= deadline) {
      result = error_code::request_timed_out;
      break;
    }
    if (wait->notified) continue;
    if (!counted) {
      if (metrics::shard_probe* probe = b.probe()) probe->produce_wait_started();
      counted = true;
    }
    asio::error_code ec;
    co_await wait->timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  if (counted) {
    if (metrics::shard_probe* probe = b.probe()) probe->produce_wait_ended();
  }
  co_return *result;
}

int16_t internal_replication_factor(const config::broker_config& cfg, int32_t configured) {
  return static_cast<int16_t>(cfg.cluster_mode() ? configured : std::min<int32_t>(configured, 1));
}

namespace {
error_code internal_topic_created(const internal_topic_spec& s, const cluster::topic_result& r) {
  if (r.error == error_code::none) {
    VLOG_INFO("coordinator") << "created " << s.name << " with " << s.partitions
                             << " partition(s)";
    return error_code::none;
  }
  if (r.error == error_code::topic_already_exists) return error_code::none;
  VLOG_WARN("coordinator") << "cannot create " << s.name << ": " << r.message;
  return error_code::coordinator_not_available;
}
}  // namespace

asio::awaitable<error_code> ensure_internal_topic(broker& b, internal_topic_spec spec) {
  internal_topic_spec& s = spec;
  if (b.metadata()->find(s.name)) co_return error_code::none;
  auto result = co_await b.with_controller([&s](cluster::controller& c) {
    return c.create_topic(s.name, s.partitions, s.replication_factor, s.configs, false,
                          /*internal=*/true);
  });
  co_return internal_topic_created(s, result);
}

asio::awaitable<void> run_on_shards(broker& b, std::vector<std::function<void()>>& work) {
  auto home = co_await asio::this_coro::executor;
  auto st = std::make_shared<join_state>(home);
  st->done.expires_at(asio::steady_timer::time_point::max());
  const int current = shard_set::current();
  for (unsigned s = 0; s < work.size(); ++s) {
    if (work[s] && static_cast<int>(s) != current) ++st->pending;
  }
  for (unsigned s = 0; s < work.size(); ++s) {
    if (work[s] && static_cast<int>(s) != current) start_remote(b, s, &work[s], st, home);
  }
  std::exception_ptr local;
  if (current >= 0 && static_cast<size_t>(current) < work.size() && work[current]) {
    local = run_inline(work[current]);
  }
  // Completions are posted to this loop, so `pending` cannot change between this check and
  // the wait: a finish before the wait is seen here, a finish after it cancels the wait.
  if (st->pending > 0) {
    asio::error_code ec;
    co_await st->done.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  if (local) std::rethrow_exception(local);
  if (st->error) std::rethrow_exception(st->error);
}

}  // namespace varve::server::handlers
