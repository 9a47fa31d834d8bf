#!/usr/bin/env bash
# kafka-consumer-groups.sh: Kafka's kafka-consumer-groups.sh (org.apache.kafka.tools.consumer.group.ConsumerGroupCommand) from the Kafka 4.x jars.
exec "$(dirname "${BASH_SOURCE[0]}")/_run-class.sh" org.apache.kafka.tools.consumer.group.ConsumerGroupCommand "$@"
