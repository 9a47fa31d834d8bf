#!/usr/bin/env bash
# kafka-topics.sh: Kafka's kafka-topics.sh (org.apache.kafka.tools.TopicCommand) from the Kafka 4.x jars.
exec "$(dirname "${BASH_SOURCE[0]}")/_run-class.sh" org.apache.kafka.tools.TopicCommand "$@"
