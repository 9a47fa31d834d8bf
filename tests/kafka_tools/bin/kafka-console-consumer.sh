#!/usr/bin/env bash
# kafka-console-consumer.sh: Kafka's kafka-console-consumer.sh (org.apache.kafka.tools.consumer.ConsoleConsumer) from the Kafka 4.x jars.
exec "$(dirname "${BASH_SOURCE[0]}")/_run-class.sh" org.apache.kafka.tools.consumer.ConsoleConsumer "$@"
