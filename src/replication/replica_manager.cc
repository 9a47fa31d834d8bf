#include "replication/replica_manager.h"

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>

#include "common/log.h"

namespace varve::replication {
namespace fs = std::filesystem;
namespace {
constexpr std::string_view kLog = "replica";
constexpr const char* kRecoveryCheckpoint = "recovery-point-offset-checkpoint";
constexpr const char* kHighWatermarkCheckpoint = "replication-offset-checkpoint";

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Kafka's offset checkpoint format: "0\n<count>\n" then "<topic> <partition> <offset>\n".
std::map<topic_partition, int64_t> read_checkpoint(const fs::path& file) {
  std::map<topic_partition, int64_t> out;
  std::ifstream in(file);
  int version = -1;
  size_t count = 0;
  if (!(in >> version >> count) || version != 0) return out;
  for (size_t i = 0; i < count; ++i) {
    topic_partition tp;
    int64_t offset;
    if (!(in >> tp.topic >> tp.partition >> offset)) return {};
    out[tp] = offset;
  }
  return out;
}

void write_checkpoint(const fs::path& file, const std::map<topic_partition, int64_t>& entries) {
  const fs::path tmp = file.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << 0 << '\n' << entries.size() << '\n';
    for (const auto& [tp, offset] : entries) {
      out << tp.topic << ' ' << tp.partition << ' ' << offset << '\n';
    }
  }
  int fd = ::open(tmp.c_str(), O_RDONLY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
  std::error_code ec;
  fs::rename(tmp, file, ec);
}

// "<topic>-<partition>" → tp; false for anything else in a log dir.
bool parse_partition_dir(const std::string& name, topic_partition* tp) {
  const auto dash = name.rfind('-');
  if (dash == std::string::npos || dash == 0 || dash + 1 >= name.size()) return false;
  for (size_t i = dash + 1; i < name.size(); ++i) {
    if (!std::isdigit(static_cast<unsigned char>(name[i]))) return false;
  }
  tp->topic = name.substr(0, dash);
  tp->partition = std::stoi(name.substr(dash + 1));
  return true;
}
}  // namespace

unsigned shard_of(const topic_partition& tp, unsigned shard_count) {
  // FNV-1a over the topic name, mixed with the partition: stable across runs and builds.
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : tp.topic) {
    h ^= c;
    h *= 1099511628211ull;
  }
  h ^= static_cast<uint64_t>(tp.partition) + 0x9e3779b97f4a7c15ull;
  h *= 1099511628211ull;
  return static_cast<unsigned>(h % shard_count);
}

replica_manager::replica_manager(asio::io_context& loop, replica_manager_options options,
                                 config_fn config)
    : loop_(loop), options_(std::move(options)), config_(std::move(config)), timer_(loop) {
  if (options_.log_dirs.size() > 1) {
    for (const auto& dir : options_.log_dirs) {
      size_t n = 0;
      std::error_code ec;
      for (const auto& e : fs::directory_iterator(dir, ec)) {
        topic_partition ignored;
        if (e.is_directory() && parse_partition_dir(e.path().filename().string(), &ignored)) ++n;
      }
      partitions_per_dir_[dir] = n;
    }
  }
  // Each shard writes its own file (`recovery-point-offset-checkpoint.<shard>`); the shard
  // count may differ between runs, so read them all and keep the lowest point per
  // partition (a lower recovery point only means a longer scan, never lost data).
  for (const auto& dir : options_.log_dirs) {
    auto& points = recovery_points_[dir];
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir, ec)) {
      const std::string name = e.path().filename().string();
      const bool hw = name.rfind(kHighWatermarkCheckpoint, 0) == 0;
      if (!hw && name.rfind(kRecoveryCheckpoint, 0) != 0) continue;
      for (const auto& [tp, offset] : read_checkpoint(e.path())) {
        auto& into = hw ? hw_checkpoints_ : points;
        auto [it, inserted] = into.emplace(tp, offset);
        if (!inserted) it->second = std::min(it->second, offset);
      }
    }
  }
}

replica_manager::~replica_manager() {
  *alive_ = false;
  close_all();
}

partition* replica_manager::get(const topic_partition& tp) {
  auto it = partitions_.find(tp);
  return it == partitions_.end() ? nullptr : it->second.get();
}

fs::path replica_manager::dir_for(const topic_partition& tp) const {
  const std::string name = tp.str();
  if (options_.log_dirs.size() == 1) return options_.log_dirs.front() / name;
  for (const auto& dir : options_.log_dirs) {
    if (fs::exists(dir / name)) return dir / name;
  }
  fs::path best = options_.log_dirs.front();
  size_t best_count = SIZE_MAX;
  for (const auto& dir : options_.log_dirs) {
    auto it = partitions_per_dir_.find(dir);
    const size_t n = it == partitions_per_dir_.end() ? 0 : it->second;
    if (n < best_count) {
      best_count = n;
      best = dir;
    }
  }
  return best / name;
}

void replica_manager::apply(const cluster::metadata_snapshot& snapshot) {
  if (closed_) return;
  for (const auto& [name, topic] : snapshot.topics) {
    for (const auto& ps : topic->partitions) {
      topic_partition tp{name, ps.partition};
      if (shard_of(tp, options_.shard_count) != options_.shard) continue;
      if (std::find(ps.replicas.begin(), ps.replicas.end(), options_.node_id) ==
          ps.replicas.end()) {
        continue;
      }
      const partition_config cfg = config_(*topic);
      std::ostringstream fp;
      for (const auto& [k, v] : topic->configs) fp << k << '=' << v << ';';
      if (auto* existing = get(tp)) {
        if (config_fingerprint_[tp] != fp.str()) {
          existing->update_config(cfg);
          config_fingerprint_[tp] = fp.str();
        }
        apply_role(*existing, ps);
        continue;
      }
      if (auto it = pending_.find(tp); it != pending_.end()) {
        // Still opening: it gets this state (and config) when it is installed.
        it->second.state = ps;
        it->second.config = cfg;
        it->second.fingerprint = fp.str();
        if (it->second.remove) it->second.reopen = true;
        continue;
      }
      const fs::path dir = dir_for(tp);
      const bool new_dir = options_.log_dirs.size() > 1 && !fs::exists(dir);
      int64_t recovery_point = -1;
      auto& points = recovery_points_[dir.parent_path()];
      if (auto it = points.find(tp); it != points.end()) recovery_point = it->second;
      int64_t hw = 0;
      if (auto it = hw_checkpoints_.find(tp); it != hw_checkpoints_.end()) hw = it->second;
      if (new_dir) ++partitions_per_dir_[dir.parent_path()];
      if (opener_) {
        pending_open want;
        want.state = ps;
        want.config = cfg;
        want.fingerprint = fp.str();
        want.dir = dir;
        want.counted = new_dir;
        open_async(tp, std::move(want), recovery_point, hw);
        continue;
      }
      std::string error;
      auto p = partition::open(tp, dir, cfg, options_.node_id, recovery_point, hw, &error);
      if (!p) {
        VLOG_ERROR(kLog) << "cannot open " << tp.str() << " in " << dir.string() << ": " << error;
        if (new_dir) --partitions_per_dir_[dir.parent_path()];
        continue;
      }
      apply_role(install(tp, std::move(p), fp.str()), ps);
    }
  }
}

partition& replica_manager::install(const topic_partition& tp, std::unique_ptr<partition> p,
                                    const std::string& fingerprint) {
  VLOG_DEBUG(kLog) << "opened " << tp.str() << " log end offset " << p->log_end_offset();
  p->set_isr_change_sink(isr_sink_);
  partition& ref = *p;
  partitions_[tp] = std::move(p);
  config_fingerprint_[tp] = fingerprint;
  return ref;
}

void replica_manager::uncount_dir(const fs::path& parent) {
  if (auto c = partitions_per_dir_.find(parent); c != partitions_per_dir_.end() && c->second > 0) {
    --c->second;
  }
}

void replica_manager::open_async(const topic_partition& tp, pending_open want,
                                 int64_t recovery_point, int64_t hw_checkpoint) {
  const fs::path dir = want.dir;
  const partition_config cfg = want.config;
  const cluster::partition_state first_state = want.state;
  want.opened_with = want.fingerprint;
  pending_[tp] = std::move(want);
  const int32_t node_id = options_.node_id;
  asio::io_context* loop = &loop_;
  opener_([this, loop, alive = alive_, tp, dir, cfg, first_state, node_id, recovery_point,
           hw_checkpoint] {
    std::string error;
    auto p = partition::open(tp, dir, cfg, node_id, recovery_point, hw_checkpoint, &error);
    auto first = partition::state_change::none;
    // The first state here too: becoming leader writes the leader-epoch checkpoint (fsync).
    if (p) first = p->apply_state(first_state, now_ms());
    auto opened = std::make_shared<std::unique_ptr<partition>>(std::move(p));
    asio::post(*loop, [this, alive, tp, opened, first, error] {
      if (!*alive) return;  // the manager is gone: the partition closes with `opened`
      finish_open(tp, std::move(*opened), first, error);
    });
  });
}

void replica_manager::finish_open(const topic_partition& tp, std::unique_ptr<partition> p,
                                  partition::state_change first, const std::string& error) {
  auto it = pending_.find(tp);
  if (it == pending_.end()) return;  // not ours (cannot happen: one open per partition)
  pending_open want = std::move(it->second);
  pending_.erase(it);
  auto release_waiters = [this] {
    if (!pending_.empty()) return;
    auto waiters = std::move(open_waiters_);
    open_waiters_.clear();
    for (auto& w : waiters) w();
  };
  const fs::path parent = want.dir.parent_path();
  if (!p) {
    VLOG_ERROR(kLog) << "cannot open " << tp.str() << " in " << want.dir.string() << ": " << error;
    if (want.counted) uncount_dir(parent);
    release_waiters();
    return;
  }
  if (closed_) {
    p->close();
    release_waiters();
    return;
  }
  if (want.remove) {
    VLOG_INFO(kLog) << "removing " << tp.str() << " (StopReplica with delete while it opened)";
    p->remove();
    p.reset();
    uncount_dir(parent);
    if (want.reopen) {  // created again meanwhile: a new, empty log in its place
      want.remove = want.reopen = false;
      want.dir = dir_for(tp);
      want.counted = options_.log_dirs.size() > 1;
      if (want.counted) ++partitions_per_dir_[want.dir.parent_path()];
      open_async(tp, std::move(want), -1, 0);
      return;
    }
    release_waiters();
    return;
  }
  if (want.fingerprint != want.opened_with) p->update_config(want.config);
  partition& ref = install(tp, std::move(p), want.fingerprint);
  // The newest state apply() saw while it opened (usually the one it opened with: none).
  const auto change = ref.apply_state(want.state, now_ms());
  if (first == partition::state_change::role_change ||
      change == partition::state_change::role_change) {
    report_role(ref);
  }
  release_waiters();
}

void replica_manager::when_opened(std::function<void()> done) {
  if (pending_.empty()) {
    done();
    return;
  }
  open_waiters_.push_back(std::move(done));
}

void replica_manager::report_role(partition& p) {
  if (on_follow_) on_follow_(p.tp(), p.is_leader() ? -1 : p.leader(), p.leader_epoch());
  if (on_leadership_) on_leadership_(p.tp(), p.is_leader());
}

void replica_manager::apply_role(partition& p, const cluster::partition_state& ps) {
  const bool was_leader = p.is_leader();
  const size_t isr_before = p.isr().size();
  const auto change = p.apply_state(ps, now_ms());
  if (was_leader && p.is_leader() && change != partition::state_change::none) {
    if (p.isr().size() < isr_before) ++isr_shrinks_;
    if (p.isr().size() > isr_before) ++isr_expands_;
  }
  if (change != partition::state_change::role_change) return;
  if (on_follow_) on_follow_(p.tp(), p.is_leader() ? -1 : ps.leader, ps.leader_epoch);
  // Every new leader epoch is reported, so a coordinator reloads its state after a
  // leadership it may have lost and regained in between.
  if (on_leadership_) on_leadership_(p.tp(), p.is_leader());
}

void replica_manager::remove(const std::vector<topic_partition>& tps) {
  for (const auto& tp : tps) {
    if (auto pending = pending_.find(tp); pending != pending_.end()) {
      pending->second.remove = true;  // finish_open deletes it
      pending->second.reopen = false;
      hw_checkpoints_.erase(tp);
      for (auto& [dir, points] : recovery_points_) points.erase(tp);
      continue;
    }
    auto it = partitions_.find(tp);
    if (it == partitions_.end()) continue;
    if (on_follow_) on_follow_(tp, -1, -1);
    if (on_leadership_ && it->second->is_leader()) on_leadership_(tp, false);
    VLOG_INFO(kLog) << "removing " << tp.str() << " (StopReplica with delete)";
    const fs::path parent = it->second->log().dir().parent_path();
    it->second->remove();
    uncount_dir(parent);
    config_fingerprint_.erase(tp);
    hw_checkpoints_.erase(tp);
    for (auto& [dir, points] : recovery_points_) points.erase(tp);
    partitions_.erase(it);
  }
}

void replica_manager::start() {
  last_retention_ms_ = now_ms();
  last_checkpoint_ms_ = now_ms();
  last_producer_expiry_ms_ = now_ms();
  schedule();
}

void replica_manager::schedule() {
  timer_.expires_after(std::chrono::milliseconds(options_.housekeeping_interval_ms));
  timer_.async_wait([this](const asio::error_code& ec) {
    if (ec || closed_) return;
    housekeeping();
    schedule();
  });
}

void replica_manager::housekeeping() {
  const int64_t now = now_ms();
  const bool retention_due = now - last_retention_ms_ >= options_.retention_check_interval_ms;
  if (retention_due) last_retention_ms_ = now;
  const bool expiry_due =
      now - last_producer_expiry_ms_ >= options_.producer_id_expiration_check_interval_ms;
  if (expiry_due) last_producer_expiry_ms_ = now;
  const int64_t expire_after = expiry_due ? options_.producer_id_expiration_ms : -1;
  for (auto& [tp, p] : partitions_) p->housekeeping(now, retention_due, expire_after);
  if (now - last_checkpoint_ms_ >= options_.recovery_checkpoint_interval_ms) {
    last_checkpoint_ms_ = now;
    write_recovery_checkpoints();
  }
}

void replica_manager::write_recovery_checkpoints(bool here) {
  // Each shard owns a disjoint set of partitions, so each writes its own checkpoint file
  // per log dir to avoid cross-shard coordination.
  std::map<fs::path, std::map<topic_partition, int64_t>> by_dir;
  std::map<fs::path, std::map<topic_partition, int64_t>> hw_by_dir;
  // Partitions not open (yet) keep the points read at start: their data has not changed.
  for (const auto& [dir, points] : recovery_points_) {
    for (const auto& [tp, offset] : points) {
      if (partitions_.count(tp)) continue;
      by_dir[dir][tp] = offset;
      if (auto hw = hw_checkpoints_.find(tp); hw != hw_checkpoints_.end()) {
        hw_by_dir[dir][tp] = hw->second;
      }
    }
  }
  for (const auto& [tp, p] : partitions_) {
    by_dir[p->log().dir().parent_path()][tp] = p->log().recovery_point();
    hw_by_dir[p->log().dir().parent_path()][tp] = p->high_watermark();
  }
  const std::string suffix = "." + std::to_string(options_.shard);
  std::vector<std::pair<fs::path, std::map<topic_partition, int64_t>>> files;
  for (const auto& dir : options_.log_dirs) {
    files.emplace_back(dir / (std::string(kRecoveryCheckpoint) + suffix), std::move(by_dir[dir]));
    files.emplace_back(dir / (std::string(kHighWatermarkCheckpoint) + suffix),
                       std::move(hw_by_dir[dir]));
  }
  const uint64_t seq = ++checkpoints_->issued;
  auto write = [files = std::move(files), order = checkpoints_, seq] {
    std::lock_guard lock(order->mu);
    if (seq <= order->written) return;  // a newer checkpoint is on disk already
    for (const auto& [file, entries] : files) write_checkpoint(file, entries);
    order->written = seq;
  };
  if (here || !checkpoint_writer_) {
    write();
  } else {
    checkpoint_writer_(std::move(write));
  }
}

void replica_manager::close_all() {
  if (closed_) return;
  closed_ = true;
  asio::error_code ignored;
  timer_.cancel();
  for (auto& [tp, p] : partitions_) p->close();
  write_recovery_checkpoints(true);
  VLOG_INFO(kLog) << "shard " << options_.shard << ": closed " << partitions_.size()
                  << " partitions cleanly";
  // Requests still in flight on open connections now find no partition and get
  // NOT_LEADER_OR_FOLLOWER (retriable) instead of touching a closed log.
  partitions_.clear();
}

}  // namespace varve::replication
