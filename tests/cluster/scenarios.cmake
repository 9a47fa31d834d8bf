# The seed's broker-side loss scenarios (issue #4), one ctest test each:
# tests/cluster/scenario_<name>_test.py, run through run.sh with the interop venv
# (tests/cluster/install.sh), each printing its acknowledged / lost / duplicated counts.
# Included from tests/cluster/CMakeLists.txt.
function(varve_cluster_scenario name)
  add_test(NAME cluster_scenario_${name}
           COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/run.sh scenario_${name}_test.py)
  set_tests_properties(cluster_scenario_${name} PROPERTIES LABELS fault TIMEOUT 600)
  if(TARGET varve)
    set_tests_properties(cluster_scenario_${name} PROPERTIES
                         ENVIRONMENT "VARVE_BIN=$<TARGET_FILE:varve>")
  endif()
endfunction()

# acks=0 / acks=1 lose what the leader acknowledged alone when it dies; acks=all does not.
varve_cluster_scenario(acks_loss)
# RF=1: the partition is offline while its broker is down; its disk lost = every record lost.
varve_cluster_scenario(rf1)
# Whole ISR down: unclean election (topic-level true) loses the records the lagging replica
# never had and is counted; false keeps the partition offline and loses nothing.
varve_cluster_scenario(unclean)
# KIP-101: a restarted follower becomes leader without losing committed records; the divergent
# old leader truncates by leader epoch and both replicas serve identical logs.
varve_cluster_scenario(kip101)
# ZooKeeper restarted and the controller's session expired under an idempotent acks=all
# producer: the cluster recovers (controller, leaders, full ISR) and nothing is lost.
varve_cluster_scenario(zk_session)
# Partition reassignment with Kafka's kafka-reassign-partitions tool: the new replica catches
# up, leadership moves into the target, the removed replica is deleted, nothing is lost.
varve_cluster_scenario(reassign)
# Controlled shutdown moves leadership before the broker exits; kafka-leader-election moves it
# back to the preferred replicas; DeleteTopics removes the replicas on every broker.
varve_cluster_scenario(admin)
