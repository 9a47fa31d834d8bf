package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

const (
	roundtripPartitions = 3
	// Records per codec × acks combination: 3 × 3334 ≥ 10,000 records per codec.
	recordsPerCombo = 3334
)

type codecCase struct {
	name  string
	codec kgo.CompressionCodec
	attr  uint8 // compression bits of the batch attributes Kafka assigns to the codec
}

type acksCase struct {
	name string
	acks kgo.Acks
	// known: the broker answers, so each record's partition and offset are acknowledged.
	known bool
}

// sentRecord is what the producer sent plus what the broker acknowledged.
type sentRecord struct {
	key, value []byte
	headers    []kgo.RecordHeader
	timestamp  time.Time
	partition  int32 // chosen by the producer (manual partitioner)
	ackedPart  int32
	ackedOff   int64
	acked      bool
}

// combo is one topic: a codec × acks combination and everything sent to it.
type combo struct {
	codec codecCase
	acks  acksCase
	topic string
	sent  []*sentRecord
	byKey map[string]*sentRecord
}

func codecCases() []codecCase {
	return []codecCase{
		{"none", kgo.NoCompression(), 0},
		{"gzip", kgo.GzipCompression(), 1},
		{"snappy", kgo.SnappyCompression(), 2},
		{"lz4", kgo.Lz4Compression(), 3},
		{"zstd", kgo.ZstdCompression(), 4},
	}
}

func acksCases() []acksCase {
	return []acksCase{
		{"0", kgo.NoAck(), false},
		{"1", kgo.LeaderAck(), true},
		{"all", kgo.AllISRAcks(), true},
	}
}

// makeRecords builds the records of one combination. Values repeat a short pattern so every
// batch is smaller compressed (franz-go sends a batch uncompressed when compression does
// not shrink it, and the test checks the codec of every consumed batch).
func makeRecords(c *combo, base time.Time) {
	c.byKey = make(map[string]*sentRecord, recordsPerCombo)
	for i := 0; i < recordsPerCombo; i++ {
		key := fmt.Sprintf("%s-k%06d", c.topic, i)
		unit := fmt.Sprintf("v%d-%s|", i, c.codec.name)
		value := strings.Repeat(unit, 1+(i%7)+96/len(unit))
		headers := []kgo.RecordHeader{
			{Key: "idx", Value: []byte(fmt.Sprint(i))},
			{Key: "combo", Value: []byte(c.codec.name + "/" + c.acks.name)},
		}
		if i%5 == 0 {
			headers = append(headers, kgo.RecordHeader{Key: "empty", Value: []byte{}})
		}
		if i%3 == 0 {
			headers = append(headers, kgo.RecordHeader{Key: "idx", Value: []byte("dup-key")})
		}
		s := &sentRecord{
			key:       []byte(key),
			value:     []byte(value),
			headers:   headers,
			timestamp: base.Add(time.Duration(i) * time.Millisecond),
			partition: int32(i % roundtripPartitions),
		}
		c.sent = append(c.sent, s)
		c.byKey[key] = s
	}
}

// produceCombo sends every record of c with its own producer and waits for all acks.
func produceCombo(ctx context.Context, c *combo) error {
	opts := []kgo.Opt{
		kgo.DefaultProduceTopic(c.topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchCompression(c.codec.codec),
		kgo.RequiredAcks(c.acks.acks),
		kgo.ProducerLinger(5 * time.Millisecond),
		kgo.ProducerBatchMaxBytes(256 << 10),
		kgo.RecordDeliveryTimeout(120 * time.Second),
	}
	if c.acks.acks != kgo.AllISRAcks() {
		// franz-go's idempotent producer requires acks=all.
		opts = append(opts, kgo.DisableIdempotentWrite())
	}
	cl := newClient(opts...)
	defer cl.Close()

	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	for _, s := range c.sent {
		s := s
		r := &kgo.Record{
			Key:       s.key,
			Value:     s.value,
			Headers:   s.headers,
			Timestamp: s.timestamp,
			Partition: s.partition,
		}
		wg.Add(1)
		cl.Produce(ctx, r, func(r *kgo.Record, err error) {
			defer wg.Done()
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if firstErr == nil {
					firstErr = fmt.Errorf("produce to %s partition %d: %w", c.topic, r.Partition, err)
				}
				return
			}
			s.acked = true
			s.ackedPart = r.Partition
			s.ackedOff = r.Offset
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(90 * time.Second):
		return errors.New("not every record was acknowledged within 90s")
	}
	return firstErr
}

func headersEqual(a, b []kgo.RecordHeader) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Key != b[i].Key || !bytes.Equal(a[i].Value, b[i].Value) {
			return false
		}
	}
	return true
}

// consumeAll reads every partition of every topic from the start until want records per
// topic arrived, nothing new came for 15s, or 120s passed.
func consumeAll(ctx context.Context, topics []string, want int) map[string][]*kgo.Record {
	parts := make(map[string]map[int32]kgo.Offset, len(topics))
	for _, t := range topics {
		parts[t] = make(map[int32]kgo.Offset, roundtripPartitions)
		for p := int32(0); p < roundtripPartitions; p++ {
			parts[t][p] = kgo.NewOffset().AtStart()
		}
	}
	cl := newClient(kgo.ConsumePartitions(parts), kgo.FetchMaxWait(500*time.Millisecond))
	defer cl.Close()

	got := make(map[string][]*kgo.Record, len(topics))
	total, target := 0, want*len(topics)
	deadline := time.Now().Add(120 * time.Second)
	lastProgress := time.Now()
	for total < target && time.Now().Before(deadline) && time.Since(lastProgress) < 15*time.Second {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		fetches := cl.PollFetches(pctx)
		cancel()
		fetches.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				fmt.Printf("fetch error %s/%d: %v\n", t, p, err)
			}
		})
		n := 0
		fetches.EachRecord(func(r *kgo.Record) {
			got[r.Topic] = append(got[r.Topic], r)
			n++
		})
		if n > 0 {
			total += n
			lastProgress = time.Now()
		}
	}
	if total < target {
		fmt.Printf("consume stopped with %d of %d records (deadline or no progress for 15s)\n", total, target)
	}
	return got
}

// verifyCombo checks the consumed records of one topic against what was sent and acked.
func verifyCombo(f *failures, c *combo, got []*kgo.Record) {
	if len(got) != len(c.sent) {
		f.addf("%s: consumed %d records, produced %d", c.topic, len(got), len(c.sent))
	}
	seen := make(map[string]bool, len(got))
	offsets := make(map[int32][]int64)
	for _, r := range got {
		k := string(r.Key)
		s, ok := c.byKey[k]
		if !ok {
			f.addf("%s: consumed a record with unknown key %q at %d/%d", c.topic, k, r.Partition, r.Offset)
			continue
		}
		if seen[k] {
			f.addf("%s: key %q consumed twice (again at %d/%d)", c.topic, k, r.Partition, r.Offset)
			continue
		}
		seen[k] = true
		offsets[r.Partition] = append(offsets[r.Partition], r.Offset)
		if !bytes.Equal(r.Value, s.value) {
			f.addf("%s: key %q value %q, sent %q", c.topic, k, r.Value, s.value)
		}
		if !headersEqual(r.Headers, s.headers) {
			f.addf("%s: key %q headers %v, sent %v", c.topic, k, r.Headers, s.headers)
		}
		if r.Timestamp.UnixMilli() != s.timestamp.UnixMilli() {
			f.addf("%s: key %q timestamp %d, sent %d", c.topic, k, r.Timestamp.UnixMilli(), s.timestamp.UnixMilli())
		}
		if r.Attrs.TimestampType() != 0 {
			f.addf("%s: key %q timestamp type %d, want 0 (CreateTime)", c.topic, k, r.Attrs.TimestampType())
		}
		if r.Attrs.CompressionType() != c.codec.attr {
			f.addf("%s: key %q came in a batch with codec %d, produced with %s (%d)", c.topic, k,
				r.Attrs.CompressionType(), c.codec.name, c.codec.attr)
		}
		if r.Partition != s.partition {
			f.addf("%s: key %q consumed from partition %d, produced to %d", c.topic, k, r.Partition, s.partition)
		}
		if c.acks.known {
			if !s.acked {
				f.addf("%s: key %q consumed but never acknowledged", c.topic, k)
			} else if r.Partition != s.ackedPart || r.Offset != s.ackedOff {
				f.addf("%s: key %q at %d/%d, acknowledged at %d/%d", c.topic, k, r.Partition, r.Offset, s.ackedPart, s.ackedOff)
			}
		}
	}
	// Offsets of each partition must be exactly 0..n-1 (nothing lost, nothing duplicated).
	for p, offs := range offsets {
		sort.Slice(offs, func(i, j int) bool { return offs[i] < offs[j] })
		for i, o := range offs {
			if o != int64(i) {
				f.addf("%s: partition %d offsets not contiguous from 0: position %d holds offset %d", c.topic, p, i, o)
				break
			}
		}
	}
	for _, s := range c.sent {
		if !seen[string(s.key)] {
			f.addf("%s: key %q produced but not consumed", c.topic, s.key)
		}
	}
}

func runRoundtrip(f *failures) {
	ctx := context.Background()
	admCl := newClient()
	defer admCl.Close()
	adm := kadm.NewClient(admCl)
	adm.SetTimeoutMillis(30000)

	// Explicit CreateTimes shortly before now: brokers may bound how far in the future a
	// timestamp may lie, and franz-go measures RecordDeliveryTimeout from the record's
	// Timestamp, so it must not lie far in the past either.
	base := time.Now().Add(-10 * time.Second).Truncate(time.Millisecond)
	var combos []*combo
	var topics []string
	for _, cc := range codecCases() {
		for _, ac := range acksCases() {
			c := &combo{codec: cc, acks: ac, topic: fmt.Sprintf("franz-%s-acks%s", cc.name, ac.name)}
			createTopic(ctx, adm, c.topic, roundtripPartitions)
			makeRecords(c, base)
			combos = append(combos, c)
			topics = append(topics, c.topic)
		}
	}
	for _, c := range combos {
		waitForLeaders(ctx, adm, c.topic, roundtripPartitions)
	}

	produced := 0
	for _, c := range combos {
		t0 := time.Now()
		if err := produceCombo(ctx, c); err != nil {
			fatalf("%s: %v", c.topic, err)
		}
		produced += len(c.sent)
		fmt.Printf("produced %d records to %s (codec %s, acks %s) in %.2fs\n",
			len(c.sent), c.topic, c.codec.name, c.acks.name, time.Since(t0).Seconds())
	}

	got := consumeAll(ctx, topics, recordsPerCombo)
	consumed := 0
	for _, c := range combos {
		consumed += len(got[c.topic])
		verifyCombo(f, c, got[c.topic])
	}
	fmt.Printf("produced=%d consumed=%d mismatches=%d\n", produced, consumed, f.count())
}
