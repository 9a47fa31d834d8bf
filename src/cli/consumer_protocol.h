#pragma once
// The "consumer" embedded protocol carried in JoinGroup/SyncGroup/DescribeGroups bytes
// (Kafka's ConsumerProtocolAssignment): what DescribeGroups' member_assignment means for a
// classic consumer group.
//
//   assignment := version:int16 topics:[topic] user_data:bytes(nullable)   (v1+: same shape)
//   topic      := name:string(int16 length) partitions:[int32]             (int32 counts)
//
// Versions 0..3 share this layout for the fields read here; later fields are ignored.
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace varve::cli {

struct consumer_assignment {
  int16_t version = 0;
  struct topic_partitions {
    std::string topic;
    std::vector<int32_t> partitions;
  };
  std::vector<topic_partitions> topics;
};

// Decodes an assignment. Empty input is a valid empty assignment (a member that has not
// been assigned yet). False on truncated or malformed input.
bool decode_consumer_assignment(std::span<const uint8_t> bytes, consumer_assignment* out);

// Encodes (version 0, no user data); used by tests.
std::vector<uint8_t> encode_consumer_assignment(const consumer_assignment& a);

}  // namespace varve::cli
