#!/usr/bin/env bash
# kafka-console-producer.sh: Kafka's kafka-console-producer.sh (org.apache.kafka.tools.ConsoleProducer) from the Kafka 4.x jars.
exec "$(dirname "${BASH_SOURCE[0]}")/_run-class.sh" org.apache.kafka.tools.ConsoleProducer "$@"
