#pragma once
// replication::read_partition_records — replays the records of one partition replica in
// offset order. The coordinators rebuild their state this way when their broker becomes the
// leader of an internal topic's partition (__consumer_offsets, __transaction_state).
//
// Contract:
//   - reads from part.log_start_offset() up to part.high_watermark(), both taken when the
//     call starts: nothing at or past that high watermark is delivered;
//   - for each data batch, in offset order, calls on_record(record, batch header) once per
//     record of the batch (a batch that straddles the start is delivered whole);
//   - for each control batch that is a transaction marker, calls
//     on_marker(producer id, commit) (true for COMMIT, false for ABORT), in the same order
//     as the records; other control batches are skipped. on_marker may be empty;
//   - returns true with *next_offset = the offset after the last batch read (the start
//     offset if there was none). Reading stops early, without error, where the log returns
//     no data or no complete batch header;
//   - returns false with *error ("cannot read offset N", "read error at offset N",
//     "undecodable batch at offset N") when a read fails or a data batch cannot be decoded.
//     The callbacks may already have run for the batches before it: a caller that must not
//     keep half a replay discards what it built.
//
// Threading: like every partition method, on the partition's shard loop. The reads are
// blocking pread calls on the segment files (a leadership change is rare; the loop waits).
#include <cstdint>
#include <functional>
#include <string>

#include "protocol/record_batch.h"
#include "replication/partition.h"

namespace varve::replication {

using record_fn =
    std::function<void(const protocol::record&, const protocol::record_batch_header&)>;
using marker_fn = std::function<void(int64_t producer_id, bool commit)>;

bool read_partition_records(partition& part, const record_fn& on_record, const marker_fn& on_marker,
                            int64_t* next_offset, std::string* error);

}  // namespace varve::replication
