#include "server/handlers/util.h"

#include <asio/this_coro.hpp>

namespace varve::server::handlers {
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
