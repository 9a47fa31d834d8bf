#!/usr/bin/env bash
# kafka-configs.sh: Kafka's kafka-configs.sh (kafka.admin.ConfigCommand) from the Kafka 4.x jars.
exec "$(dirname "${BASH_SOURCE[0]}")/_run-class.sh" kafka.admin.ConfigCommand "$@"
