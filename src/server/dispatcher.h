#pragma once
// server::dispatch — the one table {api_key → versions, handler} (DESIGN.md §1) that both
// routes requests and answers ApiVersions.
//
// For every request: decode the header (its version follows from api key + version),
// look the api up, refuse versions outside the table, decode the body with the generated
// type, run the handler, encode header + body. A frame that cannot be decoded, an unknown
// api key or an unsupported version (except ApiVersions, which answers
// UNSUPPORTED_VERSION at v0 as Kafka does) closes the connection.
#include <asio.hpp>
#include <cstdint>
#include <span>
#include <string_view>

#include "net/server.h"
#include "protocol/messages.h"

namespace varve::server {

class broker;

// What a handler sees of its request.
struct request_context {
  broker& b;
  const net::connection_info& conn;
  const protocol::request_header& header;
  int16_t version;
  net::request_frame frame;
  std::string_view api_name;
  bool send_response = true;  // handlers clear it for produce acks=0
  // With no response to carry an error (acks=0), Kafka closes the connection so the
  // producer notices the failure and refreshes its metadata.
  bool close_connection = false;
};

struct api_entry {
  int16_t key;
  std::string_view name;
  int16_t min_version;
  int16_t max_version;
  int16_t flexible_from;
  asio::awaitable<net::handler_result> (*run)(request_context&, protocol::reader&);
};

std::span<const api_entry> api_table();

asio::awaitable<net::handler_result> dispatch(broker& b, const net::connection_info& conn,
                                              net::request_frame frame);

}  // namespace varve::server
