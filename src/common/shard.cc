#include "common/shard.h"

#include "common/log.h"

namespace varve {
namespace {
thread_local int t_current_shard = -1;

// Runs a loop until it is stopped. An exception that escapes a handler (a bug, or an I/O
// error a handler did not expect) is logged with its shard and the loop keeps serving,
// rather than the whole broker terminating; the operation that threw is abandoned.
void run_loop(asio::io_context& loop, unsigned shard) {
  for (;;) {
    try {
      loop.run();
      return;
    } catch (const std::exception& e) {
      VLOG_ERROR("shard") << "event loop " << shard << ": unhandled exception: " << e.what();
    }
  }
}
}  // namespace

shard_set::shard_set(unsigned count) {
  if (count == 0) count = 1;
  for (unsigned i = 0; i < count; ++i) {
    // concurrency hint 1: each loop is run by exactly one thread.
    loops_.push_back(std::make_unique<asio::io_context>(1));
    guards_.push_back(asio::make_work_guard(*loops_.back()));
  }
}

shard_set::~shard_set() {
  stop();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
}

std::vector<asio::io_context*> shard_set::loops() {
  std::vector<asio::io_context*> out;
  for (auto& l : loops_) out.push_back(l.get());
  return out;
}

int shard_set::current() { return t_current_shard; }

void shard_set::run() {
  for (unsigned i = 1; i < count(); ++i) {
    threads_.emplace_back([this, i] {
      t_current_shard = static_cast<int>(i);
      run_loop(*loops_[i], i);
    });
  }
  t_current_shard = 0;
  run_loop(*loops_[0], 0);
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
}

void shard_set::stop() {
  for (auto& g : guards_) g.reset();
  for (auto& l : loops_) l->stop();
}

}  // namespace varve
