#pragma once
// shard_set — one event loop (asio::io_context) per core, each run by one thread.
//
// Ownership rule (DESIGN.md §7): every partition's state is owned by exactly one shard;
// code running on another shard reaches it only through invoke_on(), which runs the work on
// the owner's loop and resumes the caller on its own loop. No locks on the hot path.
#include <asio.hpp>
#include <memory>
#include <thread>
#include <type_traits>
#include <vector>

namespace varve {

class shard_set {
 public:
  explicit shard_set(unsigned count);
  ~shard_set();
  shard_set(const shard_set&) = delete;
  shard_set& operator=(const shard_set&) = delete;

  unsigned count() const { return static_cast<unsigned>(loops_.size()); }
  asio::io_context& loop(unsigned shard) { return *loops_[shard]; }
  std::vector<asio::io_context*> loops();

  // Index of the shard whose loop runs the calling thread; -1 on any other thread.
  static int current();

  // Runs every loop on its own thread (shard 0 on the calling thread) until stop().
  void run();
  void stop();

  // Runs `f` on `shard`'s loop and returns its result to the calling coroutine.
  // `f` returns either a value or an asio::awaitable<T>.
  template <typename F>
  auto invoke_on(unsigned shard, F f) {
    using r = std::invoke_result_t<F>;
    if constexpr (is_awaitable<r>::value) {
      return asio::co_spawn(loop(shard), std::move(f), asio::use_awaitable);
    } else {
      return asio::co_spawn(
          loop(shard), [f = std::move(f)]() mutable -> asio::awaitable<r> { co_return f(); },
          asio::use_awaitable);
    }
  }

 private:
  template <typename T>
  struct is_awaitable : std::false_type {};
  template <typename T>
  struct is_awaitable<asio::awaitable<T>> : std::true_type {};

  std::vector<std::unique_ptr<asio::io_context>> loops_;
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards_;
  std::vector<std::thread> threads_;
};

}  // namespace varve
