"""/metrics, /v1/status/live and /v1/status/ready of a running broker, checked against what
real clients (confluent-kafka) did: produced records, committed offsets, fetches."""
import os
import signal
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from promparse import http_get, scrape

BOOTSTRAP = os.environ['VARVE_BOOTSTRAP']
TOPIC = 'metrics-scrape'
GROUP = 'metrics-group'
PARTITIONS = 3
PER_PARTITION = [120, 45, 7]
COMMITTED = [100, 45, 0]


def setup_module():
    admin = AdminClient({'bootstrap.servers': BOOTSTRAP})
    for f in admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)]).values():
        f.result(30)
    p = Producer({'bootstrap.servers': BOOTSTRAP, 'linger.ms': 5, 'acks': 'all'})
    errors = []
    for part, n in enumerate(PER_PARTITION):
        for i in range(n):
            p.produce(TOPIC, key=f'k{i}', value=f'value-{part}-{i}' * 3, partition=part,
                      on_delivery=lambda err, msg: err and errors.append(err))
    assert p.flush(30) == 0
    assert not errors, errors
    # Offsets committed without joining (generation -1), as kafka-consumer-groups does.
    c = Consumer({'bootstrap.servers': BOOTSTRAP, 'group.id': GROUP,
                  'enable.auto.commit': False})
    c.commit(offsets=[TopicPartition(TOPIC, part, off) for part, off in enumerate(COMMITTED)],
             asynchronous=False)
    c.close()


def test_live_and_ready_answer_200_and_unknown_paths_404():
    assert http_get('/v1/status/live')[:2] == (200, 'live\n')
    assert http_get('/v1/status/ready')[:2] == (200, 'ready\n')
    assert http_get('/nothing-here')[0] == 404
    assert scrape().get('varve_ready') == 1


def test_records_and_bytes_in_match_what_was_produced():
    s = scrape()
    assert s.get('varve_topic_records_in_total', topic=TOPIC) == sum(PER_PARTITION)
    # Nothing was deleted: every byte appended is still in the partitions' logs.
    sizes = sum(s.get('varve_partition_size_bytes', topic=TOPIC, partition=p)
                for p in range(PARTITIONS))
    assert sizes > 0
    assert s.get('varve_topic_bytes_in_total', topic=TOPIC) == sizes


def test_partition_offsets_equal_the_produced_counts():
    s = scrape()
    for p, n in enumerate(PER_PARTITION):
        assert s.get('varve_partition_log_end_offset', topic=TOPIC, partition=p) == n
        assert s.get('varve_partition_high_watermark', topic=TOPIC, partition=p) == n
        assert s.get('varve_partition_log_start_offset', topic=TOPIC, partition=p) == 0


def test_consumer_lag_is_high_watermark_minus_committed():
    s = scrape()
    for p, n in enumerate(PER_PARTITION):
        labels = dict(group=GROUP, topic=TOPIC, partition=p)
        assert s.get('varve_consumer_group_committed_offset', **labels) == COMMITTED[p]
        assert s.get('varve_consumer_group_lag', **labels) == n - COMMITTED[p]
    assert s.get('varve_consumer_groups', state='Empty') >= 1
    assert s.get('varve_consumer_group_members', group=GROUP) == 0


def test_replica_gauges_of_a_healthy_single_node():
    s = scrape()
    # __consumer_offsets (created by the commit) and the test topic are hosted and led here.
    assert s.get('varve_partitions') >= PARTITIONS + 1
    assert s.get('varve_partition_leaders') == s.get('varve_partitions')
    assert s.get('varve_active_controller') == 1
    for name in ('varve_under_replicated_partitions', 'varve_under_min_isr_partitions',
                 'varve_offline_partitions', 'varve_isr_shrinks_total',
                 'varve_unclean_leader_elections_total'):
        assert s.get(name) == 0, name


def test_fetch_bytes_out_errors_by_code_and_request_histograms():
    before = scrape()
    # Start beyond the log end: the broker answers OFFSET_OUT_OF_RANGE, the client resets to
    # the earliest offset and reads partition 2 whole.
    c = Consumer({'bootstrap.servers': BOOTSTRAP, 'group.id': 'metrics-reader',
                  'auto.offset.reset': 'earliest', 'enable.auto.commit': False})
    c.assign([TopicPartition(TOPIC, 2, 10_000)])
    got = 0
    deadline = time.time() + 30
    while got < PER_PARTITION[2] and time.time() < deadline:
        m = c.poll(1.0)
        if m is not None and not m.error():
            got += 1
    assert got == PER_PARTITION[2]
    during = scrape()
    assert during.get('varve_connections') >= 1
    c.close()
    s = scrape()
    assert s.get('varve_topic_bytes_out_total', topic=TOPIC) >= \
        s.get('varve_partition_size_bytes', topic=TOPIC, partition=2)
    assert s.get('varve_request_errors_total', api='Fetch', error='OFFSET_OUT_OF_RANGE') >= 1
    fetches_before = sum(v for l, v in before.all('varve_requests_total') if l['api'] == 'Fetch')
    assert s.get('varve_requests_total', api='Fetch') > fetches_before
    assert s.get('varve_requests_total', api='Produce') >= 1
    # Every API's histogram counts each of its requests once, in cumulative buckets.
    for labels, total in s.all('varve_requests_total'):
        api = labels['api']
        buckets = [(l['le'], v) for l, v in s.all('varve_request_duration_seconds_bucket')
                   if l['api'] == api]
        counts = [v for _, v in buckets]
        assert counts == sorted(counts), api
        assert buckets[-1] == ('+Inf', s.get('varve_request_duration_seconds_count', api=api))
        # The scrape itself is not a Kafka request, so the two agree exactly.
        assert s.get('varve_request_duration_seconds_count', api=api) == total


def test_host_and_process_metrics():
    s = scrape()
    data = os.path.realpath(os.environ['VARVE_DATA_DIR'])
    dirs = {os.path.realpath(l['dir']): v for l, v in s.all('varve_log_dir_free_bytes')}
    assert dirs.get(data, 0) > 0, dirs
    st = os.statvfs(data)
    assert abs(dirs[data] - st.f_bavail * st.f_frsize) < 256 * 1024 * 1024
    assert s.get('process_resident_memory_bytes') > 1024 * 1024
    pid = int(open(os.environ['VARVE_PID_FILE']).read())
    fds = len(os.listdir(f'/proc/{pid}/fd'))
    assert abs(s.get('process_open_fds') - fds) <= 5
    assert time.time() - 3600 < s.get('process_start_time_seconds') <= time.time()


def test_transactions_are_counted_by_outcome():
    before = scrape()
    commits0 = before.get('varve_transactions_total', outcome='commit')
    aborts0 = before.get('varve_transactions_total', outcome='abort')
    admin = AdminClient({'bootstrap.servers': BOOTSTRAP})
    for f in admin.create_topics([NewTopic('metrics-txn', 1, 1)]).values():
        f.result(30)
    p = Producer({'bootstrap.servers': BOOTSTRAP, 'transactional.id': 'metrics-txn'})
    p.init_transactions(30)
    for outcome in ('commit', 'abort', 'commit'):
        p.begin_transaction()
        p.produce('metrics-txn', key=b'txn', value=outcome.encode(), partition=0)
        assert p.flush(30) == 0  # sent, so the partition is part of the transaction
        if outcome == 'commit':
            p.commit_transaction(30)
        else:
            p.abort_transaction(30)
    # EndTxn answers at PrepareCommit/PrepareAbort; the count moves once the markers are
    # written and the transaction is complete.
    deadline = time.monotonic() + 20
    while True:
        s = scrape()
        done = (s.get('varve_transactions_total', outcome='commit') - commits0,
                s.get('varve_transactions_total', outcome='abort') - aborts0)
        if done == (2, 1) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert done == (2, 1), f'(commits, aborts) counted: {done}, expected (2, 1)'


def test_a_paused_event_loop_is_counted_as_a_stall_and_logged():
    """The loops' 100 ms watchdog ticks fire late after the broker was stopped (SIGSTOP) for
    0.8 s, as they would after any block of the loop: a stall is counted, the largest lag
    is at least 0.5 s, and a warning names the loop."""
    pid = int(open(os.environ['VARVE_PID_FILE']).read())
    before = scrape()
    stalls0 = before.get('varve_event_loop_stalls_total')
    os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(0.8)
    finally:
        os.kill(pid, signal.SIGCONT)
    deadline = time.monotonic() + 10
    while True:
        s = scrape()
        stalls, lag = s.get('varve_event_loop_stalls_total'), s.get('varve_event_loop_lag_max_seconds')
        if stalls >= stalls0 + 1 and lag >= 0.5:
            break
        assert time.monotonic() < deadline, f'stalls {stalls0} -> {stalls}, largest lag {lag}'
        time.sleep(0.2)
    with open(os.environ['VARVE_LOG']) as log:
        assert any('was blocked for about' in line for line in log), 'no stall warning logged'
