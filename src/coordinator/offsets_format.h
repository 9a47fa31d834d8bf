#pragma once
// Records of the internal topic __consumer_offsets (docs/format/consumer-offsets.md).
//
// Committed offset: key = version int16 (1) | group string | topic string | partition int32;
//                   value = version int16 (3) | offset int64 | leader_epoch int32 |
//                           metadata string | commit_timestamp int64.
// A null value (tombstone) deletes the offset. Strings are int16 length + UTF-8 bytes.
//
// Group metadata: key = version int16 (2) | group string;
//                 value = GroupMetadataValue version 3 (written), versions 0-4 read
//                 (see group_metadata_value below). A null value deletes the group.
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace varve::coordinator {

inline constexpr std::string_view kOffsetsTopic = "__consumer_offsets";
inline constexpr int16_t kOffsetCommitKeyVersion = 1;
inline constexpr int16_t kOffsetCommitValueVersion = 3;
inline constexpr int16_t kGroupMetadataKeyVersion = 2;
inline constexpr int16_t kGroupMetadataValueVersion = 3;

// Java's String.hashCode over the UTF-16 code units of `s` (decoded from UTF-8; invalid
// sequences count as U+FFFD, as Java's decoder does).
int32_t java_string_hash(std::string_view s);
// Kafka's group → __consumer_offsets partition: Utils.abs(hashCode) % partitions, where
// Utils.abs is `h & 0x7fffffff`.
int32_t offsets_partition_for(std::string_view group_id, int32_t num_partitions);

struct offset_key {
  std::string group;
  std::string topic;
  int32_t partition = 0;
};

struct offset_value {
  int64_t offset = -1;
  int32_t leader_epoch = -1;
  std::string metadata;
  int64_t commit_timestamp = -1;
  int64_t expire_timestamp = -1;  // only in value version 1
};

std::vector<uint8_t> encode_offset_key(const offset_key& k);
std::vector<uint8_t> encode_offset_value(const offset_value& v);

// One member in a group metadata record. Fields by value version: rebalance_timeout_ms
// from 1 (else -1), group_instance_id from 3 (else null).
struct group_member_record {
  std::string member_id;
  std::optional<std::string> group_instance_id;
  std::string client_id;
  std::string client_host;
  int32_t rebalance_timeout_ms = -1;
  int32_t session_timeout_ms = 0;
  std::vector<uint8_t> subscription;  // the member's metadata for the selected protocol
  std::vector<uint8_t> assignment;
};

// GroupMetadataValue: the membership of a group at its last Stable or Empty transition.
// current_state_timestamp (wall clock ms, -1 if unknown) exists from value version 2.
struct group_metadata_value {
  std::string protocol_type;
  int32_t generation = 0;
  std::optional<std::string> protocol;
  std::optional<std::string> leader;
  int64_t current_state_timestamp = -1;
  std::vector<group_member_record> members;

  bool operator==(const group_metadata_value&) const = default;
};
bool operator==(const group_member_record& a, const group_member_record& b);

std::vector<uint8_t> encode_group_metadata_key(std::string_view group);
// Always value version kGroupMetadataValueVersion (3: non-flexible, with instance ids).
std::vector<uint8_t> encode_group_metadata_value(const group_metadata_value& v);
// Versions 0-4 (4 is flexible: compact strings/arrays/bytes, tagged fields skipped).
// nullopt if malformed, truncated or of an unknown version.
std::optional<group_metadata_value> decode_group_metadata_value(std::span<const uint8_t> bytes);

// Which kind of record a key is: an offset commit (versions 0 and 1), group metadata
// (version 2), or something this build does not know.
enum class key_kind { offset_commit, group_metadata, unknown };
// Decodes a key; `*out` is filled for offset commits (group, topic, partition) and for
// group metadata (group only). nullopt if malformed.
std::optional<key_kind> decode_key(std::span<const uint8_t> bytes, offset_key* out);
// Decodes value versions 0-4 (4 is flexible: tagged fields after the fixed ones are skipped).
std::optional<offset_value> decode_offset_value(std::span<const uint8_t> bytes);

}  // namespace varve::coordinator
