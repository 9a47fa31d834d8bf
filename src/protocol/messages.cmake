# Message types generated from messages/*.msg by tools/protogen/protogen.py (grammar and
# generated API: docs/protocol-definitions.md). Output goes to
# ${CMAKE_BINARY_DIR}/generated/protocol/ and is never committed.
file(GLOB VARVE_MSG_FILES CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/messages/*.msg)
list(SORT VARVE_MSG_FILES)
set(VARVE_PROTOGEN ${CMAKE_SOURCE_DIR}/tools/protogen/protogen.py)
set(VARVE_GEN_DIR ${CMAKE_BINARY_DIR}/generated/protocol)

set(VARVE_GEN_SRCS ${VARVE_GEN_DIR}/api_table.cc)
set(VARVE_GEN_HDRS ${VARVE_GEN_DIR}/api_table.h ${VARVE_GEN_DIR}/messages.h)
foreach(msg ${VARVE_MSG_FILES})
  get_filename_component(stem ${msg} NAME_WE)
  list(APPEND VARVE_GEN_SRCS ${VARVE_GEN_DIR}/messages/${stem}.cc)
  list(APPEND VARVE_GEN_HDRS ${VARVE_GEN_DIR}/messages/${stem}.h)
endforeach()
set(VARVE_GEN_TEST ${VARVE_GEN_DIR}/messages_roundtrip_test.cc)

add_custom_command(
  OUTPUT ${VARVE_GEN_SRCS} ${VARVE_GEN_HDRS} ${VARVE_GEN_TEST}
  COMMAND ${Python3_EXECUTABLE} ${VARVE_PROTOGEN}
          --in ${CMAKE_CURRENT_SOURCE_DIR}/messages --out ${VARVE_GEN_DIR}
  DEPENDS ${VARVE_MSG_FILES} ${VARVE_PROTOGEN}
  COMMENT "Generating protocol messages from ${CMAKE_CURRENT_SOURCE_DIR}/messages"
  VERBATIM)

add_library(varve_protocol STATIC ${CMAKE_CURRENT_SOURCE_DIR}/wire.cc ${VARVE_GEN_SRCS}
                                  ${VARVE_GEN_HDRS})
target_link_libraries(varve_protocol PUBLIC varve_common varve_records)

varve_unit_test(protocol_wire_test ${CMAKE_CURRENT_SOURCE_DIR}/wire_test.cc varve_protocol)
varve_unit_test(protocol_messages_roundtrip ${VARVE_GEN_TEST} varve_protocol)

# The generator's own checks: bad definitions are rejected with file:line, output is stable.
if(NOT VARVE_FUZZ)
  add_test(NAME protogen_validation
           COMMAND ${Python3_EXECUTABLE} ${CMAKE_SOURCE_DIR}/tools/protogen/protogen_test.py)
  set_tests_properties(protogen_validation PROPERTIES LABELS unit)
endif()
