package main

// The txn scenario: franz-go's transactional producer against the broker (issue #5).
//
//  1. One producer (kgo.TransactionalID) commits a transaction of txnRecords keyed records
//     to a 3-partition topic, then aborts a second one of txnRecords. The topic's layout is
//     then exact: per partition the committed records, a COMMIT marker, the aborted records
//     and an ABORT marker. A read_committed consumer sees the committed records only, a
//     read_uncommitted one sees both transactions; both read every partition to its end
//     (control records kept, so the last offset of the partition is seen).
//  2. A kgo.GroupTransactSession copies the committed topic to an output topic
//     (consume-transform-produce, End(TryCommit)): the read_committed output holds every
//     committed input record exactly once, transformed, and the group's committed offsets
//     point just past the last committed input record. Then one plain record per partition
//     is appended to the input and copied too: the group's offsets must then equal the
//     input's end offsets. (franz-go commits "last consumed record + 1"; while the input
//     ends with transaction markers and aborted records no client-visible record reaches
//     the end offset, which is why the tail records are needed for that check.)
//  3. Zombie fencing: a second client with the same transactional id initialises while the
//     first has a transaction open; the first one's EndTransaction(TryCommit) and, for a
//     second pair, its next produce fail with PRODUCER_FENCED / INVALID_PRODUCER_EPOCH, and
//     none of the zombies' records is visible read_committed while the new instances'
//     commits are.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

const (
	txnPartitions = 3
	txnRecords    = 3000 // records per transaction in part 1 (1000 per partition)
	fenceRecords  = 30   // records per transaction in part 3 (10 per partition)
	txnInput      = "franz-txn-input"
	txnOutput     = "franz-txn-output"
	txnFence      = "franz-txn-fence"
	txnGroup      = "franz-txn-copier-group"
	txnCopierID   = "franz-txn-copier"
)

// txnRecord is a record sent in a transaction and what the broker acknowledged for it.
type txnRecord struct {
	key, value []byte
	partition  int32
	timestamp  time.Time
	ackedOff   int64
	acked      bool
}

// Kafka's control record key: int16 version, int16 type (0 = ABORT, 1 = COMMIT).
const (
	markerAbort  = 0
	markerCommit = 1
)

func markerType(r *kgo.Record) int {
	if len(r.Key) < 4 {
		return -1
	}
	return int(binary.BigEndian.Uint16(r.Key[2:4]))
}

func isFenced(err error) bool {
	return errors.Is(err, kerr.ProducerFenced) || errors.Is(err, kerr.InvalidProducerEpoch)
}

// makeTxnRecords builds n records named prefix-i, spread over the partitions round-robin.
func makeTxnRecords(prefix string, n int, base time.Time) []*txnRecord {
	recs := make([]*txnRecord, n)
	for i := range recs {
		recs[i] = &txnRecord{
			key:       []byte(fmt.Sprintf("%s-%05d", prefix, i)),
			value:     []byte(fmt.Sprintf("%s value %d %s", prefix, i, bytes.Repeat([]byte{'x'}, i%50))),
			partition: int32(i % txnPartitions),
			timestamp: base.Add(time.Duration(i) * time.Millisecond),
		}
	}
	return recs
}

// produceInTxn produces recs inside the client's current transaction and waits (bounded)
// for every acknowledgement. It returns the first produce error.
func produceInTxn(ctx context.Context, cl *kgo.Client, topic string, recs []*txnRecord) error {
	var mu sync.Mutex
	var firstErr error
	for _, s := range recs {
		s := s
		r := &kgo.Record{Topic: topic, Key: s.key, Value: s.value, Partition: s.partition, Timestamp: s.timestamp,
			Headers: []kgo.RecordHeader{{Key: "key", Value: s.key}}}
		cl.Produce(ctx, r, func(r *kgo.Record, err error) {
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if firstErr == nil {
					firstErr = fmt.Errorf("produce %s to %s/%d: %w", s.key, topic, r.Partition, err)
				}
				return
			}
			s.acked = true
			s.ackedOff = r.Offset
		})
	}
	fctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := cl.Flush(fctx); err != nil {
		return fmt.Errorf("flush to %s: %w (not every record acknowledged within 60s)", topic, err)
	}
	mu.Lock()
	defer mu.Unlock()
	return firstErr
}

func newTxnProducer(txnID string, extra ...kgo.Opt) *kgo.Client {
	opts := append([]kgo.Opt{
		kgo.TransactionalID(txnID),
		kgo.TransactionTimeout(60 * time.Second),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RecordDeliveryTimeout(60 * time.Second),
		kgo.ProducerLinger(2 * time.Millisecond),
	}, extra...)
	return newClient(opts...)
}

// readToEnd consumes every partition of topic from the start with the given isolation,
// control records kept, until each partition returned the record at offset end-1 (ends
// from ListEndOffsets). A read_committed consumer also reaches the end, because markers
// are returned. Bounded: 60s overall, 15s without progress.
func readToEnd(ctx context.Context, f *failures, what, topic string, level kgo.IsolationLevel, ends map[int32]int64) map[int32][]*kgo.Record {
	parts := map[string]map[int32]kgo.Offset{topic: {}}
	for p := range ends {
		parts[topic][p] = kgo.NewOffset().AtStart()
	}
	cl := newClient(kgo.ConsumePartitions(parts), kgo.FetchIsolationLevel(level), kgo.KeepControlRecords(),
		kgo.FetchMaxWait(500*time.Millisecond))
	defer cl.Close()

	got := make(map[int32][]*kgo.Record)
	reached := func(p int32) bool {
		rs := got[p]
		return ends[p] == 0 || (len(rs) > 0 && rs[len(rs)-1].Offset >= ends[p]-1)
	}
	allReached := func() bool {
		for p := range ends {
			if !reached(p) {
				return false
			}
		}
		return true
	}
	deadline := time.Now().Add(60 * time.Second)
	lastProgress := time.Now()
	for !allReached() {
		if time.Now().After(deadline) || time.Since(lastProgress) > 15*time.Second {
			for p := range ends {
				last := int64(-1)
				if rs := got[p]; len(rs) > 0 {
					last = rs[len(rs)-1].Offset
				}
				if !reached(p) {
					f.addf("%s: %s/%d: consumption stopped at offset %d, end offset is %d", what, topic, p, last, ends[p])
				}
			}
			return got
		}
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		fetches := cl.PollFetches(pctx)
		cancel()
		fetches.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				fmt.Printf("%s: fetch error %s/%d: %v\n", what, t, p, err)
			}
		})
		fetches.EachRecord(func(r *kgo.Record) {
			got[r.Partition] = append(got[r.Partition], r)
			lastProgress = time.Now()
		})
	}
	return got
}

// listEnds returns the end offsets of topic, read_uncommitted (high watermark) or
// read_committed (last stable offset).
func listEnds(ctx context.Context, adm *kadm.Client, topic string, committed bool) (map[int32]int64, error) {
	var lo kadm.ListedOffsets
	var err error
	if committed {
		lo, err = adm.ListCommittedOffsets(ctx, topic)
	} else {
		lo, err = adm.ListEndOffsets(ctx, topic)
	}
	if err != nil {
		return nil, err
	}
	ends := make(map[int32]int64)
	for p := int32(0); p < txnPartitions; p++ {
		o, ok := lo.Lookup(topic, p)
		if !ok {
			return nil, fmt.Errorf("no end offset for %s/%d", topic, p)
		}
		if o.Err != nil {
			return nil, fmt.Errorf("end offset of %s/%d: %w", topic, p, o.Err)
		}
		ends[p] = o.Offset
	}
	return ends, nil
}

// waitTxnsComplete polls DescribeTransactions until no transaction of ids is open or has
// markers outstanding (state Empty, CompleteCommit or CompleteAbort).
func waitTxnsComplete(ctx context.Context, f *failures, adm *kadm.Client, ids ...string) {
	deadline := time.Now().Add(20 * time.Second)
	for {
		described, err := adm.DescribeTransactions(ctx, ids...)
		states := make(map[string]string)
		done := err == nil
		for _, id := range ids {
			d, ok := described[id]
			switch {
			case !ok:
				done = false
			case d.Err != nil:
				states[id] = d.Err.Error()
				done = false
			default:
				states[id] = d.State
				done = done && (d.State == "Empty" || d.State == "CompleteCommit" || d.State == "CompleteAbort")
			}
		}
		if done {
			return
		}
		if time.Now().After(deadline) {
			f.addf("after 20s transactions %v are in states %v (err %v), want complete", ids, states, err)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitEnds polls until the high watermark and the last stable offset of every partition of
// topic equal want (the markers of a transaction are written after EndTxn is answered).
func waitEnds(ctx context.Context, f *failures, adm *kadm.Client, topic string, want map[int32]int64) {
	deadline := time.Now().Add(20 * time.Second)
	for {
		hw, err1 := listEnds(ctx, adm, topic, false)
		lso, err2 := listEnds(ctx, adm, topic, true)
		ok := err1 == nil && err2 == nil
		for p, w := range want {
			ok = ok && hw[p] == w && lso[p] == w
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			f.addf("%s: after 20s high watermarks %v (err %v) and last stable offsets %v (err %v), want both %v",
				topic, hw, err1, lso, err2, want)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// checkPartitionLayout checks one partition's records (control records kept) against the
// expected sequence: the data records in order of their acknowledged offsets, each with
// the acknowledged offset, and the markers at the given offsets.
func checkPartitionLayout(f *failures, what string, p int32, got []*kgo.Record, data []*txnRecord, markers map[int64]int) {
	type slot struct {
		rec    *txnRecord
		marker int
	}
	want := make(map[int64]slot)
	for _, d := range data {
		want[d.ackedOff] = slot{rec: d, marker: -1}
	}
	for off, m := range markers {
		want[off] = slot{marker: m}
	}
	seen := make(map[int64]bool)
	for _, r := range got {
		if seen[r.Offset] {
			f.addf("%s: partition %d offset %d returned twice", what, p, r.Offset)
			continue
		}
		seen[r.Offset] = true
		w, ok := want[r.Offset]
		switch {
		case !ok:
			f.addf("%s: partition %d offset %d: unexpected record key=%q control=%v", what, p, r.Offset, r.Key, r.Attrs.IsControl())
		case w.rec == nil:
			if !r.Attrs.IsControl() || markerType(r) != w.marker {
				f.addf("%s: partition %d offset %d: want a control record of type %d, got key=%q control=%v",
					what, p, r.Offset, w.marker, r.Key, r.Attrs.IsControl())
			}
		default:
			s := w.rec
			switch {
			case r.Attrs.IsControl():
				f.addf("%s: partition %d offset %d: control record where %q was acknowledged", what, p, r.Offset, s.key)
			case !bytes.Equal(r.Key, s.key) || !bytes.Equal(r.Value, s.value):
				f.addf("%s: partition %d offset %d: key %q value %q, acknowledged there: key %q value %q",
					what, p, r.Offset, r.Key, r.Value, s.key, s.value)
			case !r.Attrs.IsTransactional():
				f.addf("%s: partition %d offset %d (%q) is not in a transactional batch", what, p, r.Offset, r.Key)
			case r.Timestamp.UnixMilli() != s.timestamp.UnixMilli():
				f.addf("%s: %q timestamp %d, sent %d", what, r.Key, r.Timestamp.UnixMilli(), s.timestamp.UnixMilli())
			}
		}
	}
	for off, w := range want {
		if !seen[off] {
			if w.rec != nil {
				f.addf("%s: partition %d: %q (acknowledged at offset %d) not consumed", what, p, w.rec.key, off)
			} else {
				f.addf("%s: partition %d: marker (type %d) at offset %d not consumed", what, p, w.marker, off)
			}
		}
	}
}

// byPartition groups records by partition, sorted by acknowledged offset.
func byPartition(recs []*txnRecord) map[int32][]*txnRecord {
	m := make(map[int32][]*txnRecord)
	for _, r := range recs {
		m[r.partition] = append(m[r.partition], r)
	}
	for _, rs := range m {
		sort.Slice(rs, func(i, j int) bool { return rs[i].ackedOff < rs[j].ackedOff })
	}
	return m
}

func countData(got map[int32][]*kgo.Record) int {
	n := 0
	for _, rs := range got {
		for _, r := range rs {
			if !r.Attrs.IsControl() {
				n++
			}
		}
	}
	return n
}

// txnCounts are the totals the scenario prints.
type txnCounts struct {
	produced, readCommitted, readUncommitted, copied, outputConsumed, fenceConsumed int
}

// txnCommitAbort is part 1. It returns the committed records (with acknowledged offsets).
func txnCommitAbort(ctx context.Context, f *failures, adm *kadm.Client, cnt *txnCounts) []*txnRecord {
	base := time.Now().Add(-5 * time.Second).Truncate(time.Millisecond)
	committed := makeTxnRecords("committed", txnRecords, base)
	aborted := makeTxnRecords("aborted", txnRecords, base)

	cl := newTxnProducer("franz-txn-producer")
	defer cl.Close()
	if err := cl.BeginTransaction(); err != nil {
		fatalf("BeginTransaction (to commit): %v", err)
	}
	if err := produceInTxn(ctx, cl, txnInput, committed); err != nil {
		fatalf("transaction to commit: %v", err)
	}
	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		fatalf("EndTransaction(TryCommit): %v", err)
	}
	if err := cl.BeginTransaction(); err != nil {
		fatalf("BeginTransaction (to abort): %v", err)
	}
	if err := produceInTxn(ctx, cl, txnInput, aborted); err != nil {
		fatalf("transaction to abort: %v", err)
	}
	if err := cl.EndTransaction(ctx, kgo.TryAbort); err != nil {
		fatalf("EndTransaction(TryAbort): %v", err)
	}
	cnt.produced += len(committed) + len(aborted)
	fmt.Printf("txn: committed %d and aborted %d records on %s\n", len(committed), len(aborted), txnInput)

	// Expected layout per partition: committed records at 0..n-1, COMMIT marker at n,
	// aborted records at n+1..2n, ABORT marker at 2n+1.
	cp, ap := byPartition(committed), byPartition(aborted)
	ends := make(map[int32]int64)
	commitAt, abortAt := make(map[int32]int64), make(map[int32]int64)
	for p := int32(0); p < txnPartitions; p++ {
		n := int64(len(cp[p]))
		for i, r := range cp[p] {
			if r.ackedOff != int64(i) {
				f.addf("%s/%d: committed record %q acknowledged at offset %d, want %d", txnInput, p, r.key, r.ackedOff, i)
			}
		}
		for i, r := range ap[p] {
			if r.ackedOff != n+1+int64(i) {
				f.addf("%s/%d: aborted record %q acknowledged at offset %d, want %d (after the COMMIT marker)",
					txnInput, p, r.key, r.ackedOff, n+1+int64(i))
			}
		}
		commitAt[p] = n
		abortAt[p] = n + 1 + int64(len(ap[p]))
		ends[p] = abortAt[p] + 1
	}
	waitEnds(ctx, f, adm, txnInput, ends)

	rc := readToEnd(ctx, f, "read_committed", txnInput, kgo.ReadCommitted(), ends)
	ru := readToEnd(ctx, f, "read_uncommitted", txnInput, kgo.ReadUncommitted(), ends)
	for p := int32(0); p < txnPartitions; p++ {
		markers := map[int64]int{commitAt[p]: markerCommit, abortAt[p]: markerAbort}
		checkPartitionLayout(f, "read_committed "+txnInput, p, rc[p], cp[p], markers)
		all := append(append([]*txnRecord{}, cp[p]...), ap[p]...)
		checkPartitionLayout(f, "read_uncommitted "+txnInput, p, ru[p], all, markers)
	}
	nrc, nru := countData(rc), countData(ru)
	cnt.readCommitted, cnt.readUncommitted = nrc, nru
	if nrc != len(committed) {
		f.addf("read_committed %s: %d data records, want the %d committed", txnInput, nrc, len(committed))
	}
	if nru != len(committed)+len(aborted) {
		f.addf("read_uncommitted %s: %d data records, want %d", txnInput, nru, len(committed)+len(aborted))
	}
	fmt.Printf("txn: read_committed consumed=%d (want %d), read_uncommitted consumed=%d (want %d)\n",
		nrc, len(committed), nru, len(committed)+len(aborted))
	return committed
}

// copier is part 2's GroupTransactSession and what it copied in committed transactions.
type copier struct {
	sess            *kgo.GroupTransactSession
	copied          int // input records whose transaction committed
	commits, aborts int
}

func newCopier() *copier {
	opts := append(baseOpts(),
		kgo.TransactionalID(txnCopierID),
		kgo.TransactionTimeout(60*time.Second),
		kgo.ConsumerGroup(txnGroup),
		kgo.ConsumeTopics(txnInput),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.RequireStableFetchOffsets(),
		kgo.FetchMaxWait(500*time.Millisecond),
		kgo.DefaultProduceTopic(txnOutput),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RecordDeliveryTimeout(60*time.Second),
	)
	sess, err := kgo.NewGroupTransactSession(opts...)
	if err != nil {
		fatalf("NewGroupTransactSession: %v", err)
	}
	return &copier{sess: sess}
}

// copyUntil runs poll → Begin → produce transformed → End(TryCommit) until want input
// records were copied in committed transactions (bounded: 120s).
func (c *copier) copyUntil(ctx context.Context, want int) {
	deadline := time.Now().Add(120 * time.Second)
	for c.copied < want {
		if time.Now().After(deadline) {
			fatalf("GroupTransactSession: copied %d of %d records in 120s (%d commits, %d aborts)", c.copied, want, c.commits, c.aborts)
		}
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		fetches := c.sess.PollFetches(pctx)
		cancel()
		fetches.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				fmt.Printf("copier: fetch error %s/%d: %v\n", t, p, err)
			}
		})
		recs := fetches.Records()
		if len(recs) == 0 {
			continue
		}
		if err := c.sess.Begin(); err != nil {
			fatalf("GroupTransactSession.Begin: %v", err)
		}
		var mu sync.Mutex
		var produceErr error
		for _, in := range recs {
			out := &kgo.Record{
				Key:       in.Key,
				Value:     append([]byte("copied:"), in.Value...),
				Partition: in.Partition,
				Timestamp: in.Timestamp,
				Headers:   []kgo.RecordHeader{{Key: "src", Value: []byte(fmt.Sprintf("%d/%d", in.Partition, in.Offset))}},
			}
			c.sess.Produce(ctx, out, func(_ *kgo.Record, err error) {
				if err != nil {
					mu.Lock()
					if produceErr == nil {
						produceErr = err
					}
					mu.Unlock()
				}
			})
		}
		ectx, cancel := context.WithTimeout(ctx, 60*time.Second)
		committed, err := c.sess.End(ectx, kgo.TryCommit)
		cancel()
		if err != nil {
			fatalf("GroupTransactSession.End(TryCommit): %v (produce error: %v)", err, produceErr)
		}
		if !committed {
			// A rebalance (or an abortable offset-commit error) aborted the transaction; the
			// session rewinds to the committed offsets and the records come again.
			c.aborts++
			fmt.Printf("copier: a transaction of %d records was aborted by the session (produce error: %v)\n", len(recs), produceErr)
			continue
		}
		if produceErr != nil {
			fatalf("copier: the transaction committed although a produce failed: %v", produceErr)
		}
		c.commits++
		c.copied += len(recs)
	}
}

// waitGroupOffsets polls the group's committed offsets of txnInput until they equal want
// (TxnOffsetCommit offsets become visible when the COMMIT marker is written).
func waitGroupOffsets(ctx context.Context, f *failures, adm *kadm.Client, what string, want map[int32]int64) {
	deadline := time.Now().Add(20 * time.Second)
	var last map[int32]int64
	var lastErr error
	for {
		last, lastErr = map[int32]int64{}, nil
		resp, err := adm.FetchOffsets(ctx, txnGroup)
		if err != nil {
			lastErr = err
		} else {
			for p := range want {
				o, ok := resp.Lookup(txnInput, p)
				switch {
				case !ok:
					last[p] = -1
				case o.Err != nil:
					lastErr = o.Err
				default:
					last[p] = o.At
				}
			}
		}
		equal := lastErr == nil
		for p, w := range want {
			equal = equal && last[p] == w
		}
		if equal {
			fmt.Printf("txn: group %s committed offsets %v = %s\n", txnGroup, last, what)
			return
		}
		if time.Now().After(deadline) {
			f.addf("group %s: committed offsets of %s are %v (err %v) after 20s, want %v (%s)", txnGroup, txnInput, last, lastErr, want, what)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// checkOutput reads txnOutput read_committed and checks it holds every record of inputs
// exactly once, transformed by the copier, on the input's partition.
func checkOutput(ctx context.Context, f *failures, adm *kadm.Client, inputs map[string]*kgo.Record) int {
	// The copier's last EndTxn was answered before its COMMIT markers were written.
	waitTxnsComplete(ctx, f, adm, txnCopierID)
	ends, err := listEnds(ctx, adm, txnOutput, true)
	if err != nil {
		f.addf("%s: %v", txnOutput, err)
		return 0
	}
	got := readToEnd(ctx, f, "read_committed", txnOutput, kgo.ReadCommitted(), ends)
	seen := make(map[string]bool)
	n := 0
	for p, rs := range got {
		for _, r := range rs {
			if r.Attrs.IsControl() {
				if markerType(r) != markerCommit {
					f.addf("%s/%d offset %d: ABORT marker though no copier transaction aborted", txnOutput, p, r.Offset)
				}
				continue
			}
			n++
			k := string(r.Key)
			in, ok := inputs[k]
			switch {
			case !ok:
				f.addf("%s/%d offset %d: key %q is no input record", txnOutput, p, r.Offset, k)
			case seen[k]:
				f.addf("%s: %q copied more than once (again at %d/%d)", txnOutput, k, p, r.Offset)
			case !bytes.Equal(r.Value, append([]byte("copied:"), in.Value...)):
				f.addf("%s: %q value %q, want %q", txnOutput, k, r.Value, "copied:"+string(in.Value))
			case p != in.Partition:
				f.addf("%s: %q on partition %d, input partition %d", txnOutput, k, p, in.Partition)
			case len(r.Headers) != 1 || string(r.Headers[0].Value) != fmt.Sprintf("%d/%d", in.Partition, in.Offset):
				f.addf("%s: %q headers %v, want src=%d/%d", txnOutput, k, r.Headers, in.Partition, in.Offset)
			}
			seen[k] = true
		}
	}
	for k := range inputs {
		if !seen[k] {
			f.addf("%s: input record %q was not copied", txnOutput, k)
		}
	}
	return n
}

// txnCopy is part 2.
func txnCopy(ctx context.Context, f *failures, adm *kadm.Client, committed []*txnRecord, cnt *txnCounts) {
	inputs := make(map[string]*kgo.Record, len(committed)+txnPartitions)
	want := make(map[int32]int64)
	for _, r := range committed {
		inputs[string(r.key)] = &kgo.Record{Key: r.key, Value: r.value, Partition: r.partition, Offset: r.ackedOff}
		if r.ackedOff+1 > want[r.partition] {
			want[r.partition] = r.ackedOff + 1
		}
	}
	c := newCopier()
	defer c.sess.Close()
	t0 := time.Now()
	c.copyUntil(ctx, len(committed))
	if c.copied != len(committed) {
		f.addf("copier: copied %d records in committed transactions, input has %d committed", c.copied, len(committed))
	}
	fmt.Printf("txn: GroupTransactSession copied %d records in %d committed transactions (%d aborted) in %.1fs\n",
		c.copied, c.commits, c.aborts, time.Since(t0).Seconds())
	waitGroupOffsets(ctx, f, adm, "just past the last committed input record", want)
	n := checkOutput(ctx, f, adm, inputs)
	fmt.Printf("txn: output read_committed consumed=%d (want %d)\n", n, len(committed))

	// One plain (non-transactional) record per input partition after the aborted
	// transaction: once copied, the group's offsets must reach the input's end offsets.
	plain := newClient(kgo.DefaultProduceTopic(txnInput), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	defer plain.Close()
	for p := int32(0); p < txnPartitions; p++ {
		key := fmt.Sprintf("tail-%d", p)
		r := &kgo.Record{Key: []byte(key), Value: []byte("plain tail record " + strconv.Itoa(int(p))), Partition: p}
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := plain.ProduceSync(pctx, r).FirstErr()
		cancel()
		if err != nil {
			fatalf("plain produce to %s/%d: %v", txnInput, p, err)
		}
		inputs[key] = r
	}
	ends, err := listEnds(ctx, adm, txnInput, false)
	if err != nil {
		fatalf("%s: %v", txnInput, err)
	}
	c.copyUntil(ctx, len(committed)+txnPartitions)
	if c.copied != len(committed)+txnPartitions {
		f.addf("copier: copied %d records in total, want %d", c.copied, len(committed)+txnPartitions)
	}
	waitGroupOffsets(ctx, f, adm, "the input's end offsets", ends)
	n = checkOutput(ctx, f, adm, inputs)
	cnt.copied, cnt.outputConsumed = c.copied, n
	fmt.Printf("txn: after the tail records: copied=%d output read_committed consumed=%d (want %d)\n",
		c.copied, n, len(committed)+txnPartitions)
}

// fenceOpen starts a transaction on a new client with txnID and produces recs in it.
func fenceOpen(ctx context.Context, txnID string, recs []*txnRecord) *kgo.Client {
	cl := newTxnProducer(txnID)
	if err := cl.BeginTransaction(); err != nil {
		fatalf("%s: BeginTransaction: %v", txnID, err)
	}
	if err := produceInTxn(ctx, cl, txnFence, recs); err != nil {
		fatalf("%s: %v", txnID, err)
	}
	return cl
}

// txnFencing is part 3.
func txnFencing(ctx context.Context, f *failures, adm *kadm.Client, cnt *txnCounts) {
	base := time.Now().Add(-5 * time.Second).Truncate(time.Millisecond)

	// (a) The zombie's EndTransaction(TryCommit) after a new instance initialised.
	zombie := fenceOpen(ctx, "franz-txn-fenced-a", makeTxnRecords("zombie-a", fenceRecords, base))
	defer zombie.Close()
	newA := makeTxnRecords("new-a", fenceRecords, base)
	successor := fenceOpen(ctx, "franz-txn-fenced-a", newA) // InitProducerId fences the zombie
	defer successor.Close()
	err := zombie.EndTransaction(ctx, kgo.TryCommit)
	switch {
	case err == nil:
		f.addf("fencing (a): the zombie's EndTransaction(TryCommit) succeeded after a new instance initialised")
	case !isFenced(err):
		f.addf("fencing (a): the zombie's EndTransaction(TryCommit) failed with %v, want PRODUCER_FENCED or INVALID_PRODUCER_EPOCH", err)
	default:
		fmt.Printf("txn: fencing (a): zombie EndTransaction(TryCommit) -> %v\n", err)
	}
	if err := successor.EndTransaction(ctx, kgo.TryCommit); err != nil {
		f.addf("fencing (a): the new instance's EndTransaction(TryCommit): %v", err)
	}

	// (b) The zombie's next produce to a partition already in its transaction (so the
	// Produce request itself carries the old epoch), then its EndTransaction.
	zombieB := fenceOpen(ctx, "franz-txn-fenced-b", makeTxnRecords("zombie-b", fenceRecords, base))
	defer zombieB.Close()
	newB := makeTxnRecords("new-b", fenceRecords, base)
	successorB := fenceOpen(ctx, "franz-txn-fenced-b", newB)
	defer successorB.Close()
	late := makeTxnRecords("zombie-b-late", txnPartitions, base)
	err = produceInTxn(ctx, zombieB, txnFence, late)
	switch {
	case err == nil:
		f.addf("fencing (b): the zombie's produce after a new instance initialised was acknowledged")
	case !isFenced(err):
		f.addf("fencing (b): the zombie's produce failed with %v, want PRODUCER_FENCED or INVALID_PRODUCER_EPOCH", err)
	default:
		fmt.Printf("txn: fencing (b): zombie produce -> %v\n", err)
	}
	if err := zombieB.EndTransaction(ctx, kgo.TryCommit); err == nil {
		f.addf("fencing (b): the zombie's EndTransaction(TryCommit) succeeded after its produce was fenced")
	} else {
		fmt.Printf("txn: fencing (b): zombie EndTransaction(TryCommit) -> %v\n", err)
	}
	if err := successorB.EndTransaction(ctx, kgo.TryCommit); err != nil {
		f.addf("fencing (b): the new instance's EndTransaction(TryCommit): %v", err)
	}

	// read_committed sees exactly the new instances' records. EndTxn is answered once the
	// decision is logged and the markers follow (on a cluster, to remote leaders), so the
	// end offsets are only final once both transactions are complete.
	waitTxnsComplete(ctx, f, adm, "franz-txn-fenced-a", "franz-txn-fenced-b")
	hw, err := listEnds(ctx, adm, txnFence, false)
	if err != nil {
		fatalf("%s: %v", txnFence, err)
	}
	waitEnds(ctx, f, adm, txnFence, hw)
	got := readToEnd(ctx, f, "read_committed", txnFence, kgo.ReadCommitted(), hw)
	want := make(map[string][]byte)
	for _, r := range append(append([]*txnRecord{}, newA...), newB...) {
		want[string(r.key)] = r.value
	}
	n := 0
	for p, rs := range got {
		for _, r := range rs {
			if r.Attrs.IsControl() {
				continue
			}
			n++
			v, ok := want[string(r.Key)]
			if !ok {
				f.addf("read_committed %s/%d offset %d: %q is not from a committed transaction", txnFence, p, r.Offset, r.Key)
				continue
			}
			if !bytes.Equal(v, r.Value) {
				f.addf("read_committed %s: %q value %q, want %q", txnFence, r.Key, r.Value, v)
			}
			delete(want, string(r.Key))
		}
	}
	for k := range want {
		f.addf("read_committed %s: committed %q not consumed", txnFence, k)
	}
	cnt.fenceConsumed = n
	fmt.Printf("txn: fencing: read_committed consumed=%d (want %d, none of the zombies')\n", n, len(newA)+len(newB))
}

func runTxn(f *failures) {
	ctx := context.Background()
	admCl := newClient()
	defer admCl.Close()
	adm := kadm.NewClient(admCl)
	adm.SetTimeoutMillis(30000)
	for _, t := range []string{txnInput, txnOutput, txnFence} {
		createTopic(ctx, adm, t, txnPartitions)
	}
	for _, t := range []string{txnInput, txnOutput, txnFence} {
		waitForLeaders(ctx, adm, t, txnPartitions)
	}

	var cnt txnCounts
	committed := txnCommitAbort(ctx, f, adm, &cnt)
	txnCopy(ctx, f, adm, committed, &cnt)
	txnFencing(ctx, f, adm, &cnt)
	fmt.Printf("produced=%d consumed=%d (read_committed) read_uncommitted=%d copied=%d output=%d fence_read_committed=%d mismatches=%d\n",
		cnt.produced, cnt.readCommitted, cnt.readUncommitted, cnt.copied, cnt.outputConsumed, cnt.fenceConsumed, f.count())
}
