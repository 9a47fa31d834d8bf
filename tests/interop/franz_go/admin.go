package main

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const (
	adminTopic      = "franz-admin"
	adminPartitions = 3
	adminPerPart    = 40 // records produced to each partition
	deleteBefore    = 15 // DeleteRecords on partition 0 up to this offset
	retentionValue  = "123456789"
)

// checkOffsets compares listed offsets of every partition of adminTopic with want.
func checkOffsets(f *failures, what string, lo kadm.ListedOffsets, err error, want map[int32]int64) {
	if err != nil {
		f.addf("%s: %v", what, err)
		return
	}
	for p, w := range want {
		o, ok := lo[adminTopic][p]
		switch {
		case !ok:
			f.addf("%s: no result for partition %d", what, p)
		case o.Err != nil:
			f.addf("%s: partition %d: %v", what, p, o.Err)
		case o.Offset != w:
			f.addf("%s: partition %d offset %d, want %d", what, p, o.Offset, w)
		}
	}
}

// topicConfig returns the described value of key for adminTopic (nil if absent).
func topicConfig(f *failures, ctx context.Context, adm *kadm.Client, key string) *kadm.Config {
	rcs, err := adm.DescribeTopicConfigs(ctx, adminTopic)
	if err != nil {
		f.addf("DescribeTopicConfigs: %v", err)
		return nil
	}
	rc, err := rcs.On(adminTopic, nil)
	if err != nil {
		f.addf("DescribeTopicConfigs: no result for %s: %v", adminTopic, err)
		return nil
	}
	if rc.Err != nil {
		f.addf("DescribeTopicConfigs %s: %v (%s)", adminTopic, rc.Err, rc.ErrMessage)
		return nil
	}
	for i := range rc.Configs {
		if rc.Configs[i].Key == key {
			return &rc.Configs[i]
		}
	}
	f.addf("DescribeTopicConfigs %s: %d configs, none named %s", adminTopic, len(rc.Configs), key)
	return nil
}

// partitionCount returns how many partitions metadata reports for topic, -1 if it is absent.
func partitionCount(ctx context.Context, adm *kadm.Client, topic string) (int, error) {
	md, err := adm.Metadata(ctx, topic)
	if err != nil {
		return 0, err
	}
	td, ok := md.Topics[topic]
	if !ok || td.Err != nil {
		return -1, td.Err
	}
	return len(td.Partitions), nil
}

func runAdmin(f *failures) {
	ctx := context.Background()
	cl := newClient()
	defer cl.Close()
	adm := kadm.NewClient(cl)
	adm.SetTimeoutMillis(30000)

	// BrokerMetadata: one broker, reachable at the bootstrap address.
	bm, err := adm.BrokerMetadata(ctx)
	if err != nil {
		fatalf("BrokerMetadata: %v", err)
	}
	if len(bm.Brokers) != 1 {
		f.addf("BrokerMetadata: %d brokers, want 1 (%v)", len(bm.Brokers), bm.Brokers)
	}
	var nodeID int32 = -1
	if len(bm.Brokers) > 0 {
		b := bm.Brokers[0]
		nodeID = b.NodeID
		if addr := fmt.Sprintf("%s:%d", b.Host, b.Port); addr != bootstrap()[0] {
			f.addf("BrokerMetadata: broker %d advertises %s, bootstrap is %s", b.NodeID, addr, bootstrap()[0])
		}
	}
	if bm.Controller < 0 {
		f.addf("BrokerMetadata: no controller id (%d)", bm.Controller)
	}
	fmt.Printf("BrokerMetadata: cluster=%q controller=%d brokers=%v\n", bm.Cluster, bm.Controller, bm.Brokers)

	// CreateTopics, then metadata shows 3 partitions led by the broker.
	createTopic(ctx, adm, adminTopic, adminPartitions)
	waitForLeaders(ctx, adm, adminTopic, adminPartitions)
	md, err := adm.Metadata(ctx, adminTopic)
	if err != nil {
		fatalf("Metadata %s: %v", adminTopic, err)
	}
	for _, p := range md.Topics[adminTopic].Partitions {
		if p.Leader != nodeID {
			f.addf("Metadata: partition %d led by %d, want broker %d", p.Partition, p.Leader, nodeID)
		}
		if len(p.Replicas) != 1 || len(p.ISR) != 1 {
			f.addf("Metadata: partition %d replicas %v isr %v, want one each", p.Partition, p.Replicas, p.ISR)
		}
	}
	ls, err := adm.ListTopics(ctx)
	if err != nil {
		f.addf("ListTopics: %v", err)
	} else if !ls.Has(adminTopic) {
		f.addf("ListTopics: %s missing from %v", adminTopic, ls.Names())
	}

	// Empty partitions: start and end offsets are both 0.
	zero := map[int32]int64{0: 0, 1: 0, 2: 0}
	lo, err := adm.ListStartOffsets(ctx, adminTopic)
	checkOffsets(f, "ListStartOffsets (empty)", lo, err, zero)
	lo, err = adm.ListEndOffsets(ctx, adminTopic)
	checkOffsets(f, "ListEndOffsets (empty)", lo, err, zero)

	// Produce adminPerPart records to each partition.
	prod := newClient(kgo.DefaultProduceTopic(adminTopic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	var recs []*kgo.Record
	for p := int32(0); p < adminPartitions; p++ {
		for i := 0; i < adminPerPart; i++ {
			recs = append(recs, &kgo.Record{Partition: p, Key: []byte(fmt.Sprintf("k%d-%d", p, i)), Value: []byte("v")})
		}
	}
	pctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	if err := prod.ProduceSync(pctx, recs...).FirstErr(); err != nil {
		fatalf("produce to %s: %v", adminTopic, err)
	}
	cancel()
	prod.Close()

	full := map[int32]int64{0: adminPerPart, 1: adminPerPart, 2: adminPerPart}
	lo, err = adm.ListStartOffsets(ctx, adminTopic)
	checkOffsets(f, "ListStartOffsets", lo, err, zero)
	lo, err = adm.ListEndOffsets(ctx, adminTopic)
	checkOffsets(f, "ListEndOffsets", lo, err, full)

	// DescribeTopicConfigs: Kafka's defaults are reported.
	if c := topicConfig(f, ctx, adm, "cleanup.policy"); c != nil && (c.Value == nil || *c.Value != "delete") {
		f.addf("DescribeTopicConfigs: cleanup.policy = %v, want delete", c.MaybeValue())
	}
	if c := topicConfig(f, ctx, adm, "retention.ms"); c != nil {
		if c.Value == nil || *c.Value == retentionValue {
			f.addf("DescribeTopicConfigs: retention.ms = %q before it was altered", c.MaybeValue())
		}
		if c.Source == kmsg.ConfigSourceDynamicTopicConfig {
			f.addf("DescribeTopicConfigs: retention.ms reported as a topic override before any was set")
		}
	}

	// AlterTopicConfigs (incremental): the new value is described as a topic override.
	ar, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{
		{Op: kadm.SetConfig, Name: "retention.ms", Value: kadm.StringPtr(retentionValue)},
	}, adminTopic)
	if err != nil {
		f.addf("AlterTopicConfigs: %v", err)
	} else if r, err := ar.On(adminTopic, nil); err != nil || r.Err != nil {
		f.addf("AlterTopicConfigs %s: %v %v (%s)", adminTopic, err, r.Err, r.ErrMessage)
	}
	if c := topicConfig(f, ctx, adm, "retention.ms"); c != nil {
		if c.MaybeValue() != retentionValue {
			f.addf("after AlterTopicConfigs: retention.ms = %q, want %s", c.MaybeValue(), retentionValue)
		}
		if c.Source != kmsg.ConfigSourceDynamicTopicConfig {
			f.addf("after AlterTopicConfigs: retention.ms source %v, want DYNAMIC_TOPIC_CONFIG", c.Source)
		}
	}
	// An invalid value is rejected and leaves the config unchanged.
	ar, err = adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{
		{Op: kadm.SetConfig, Name: "retention.ms", Value: kadm.StringPtr("not-a-number")},
	}, adminTopic)
	if err == nil {
		if r, err2 := ar.On(adminTopic, nil); err2 == nil && r.Err == nil {
			f.addf("AlterTopicConfigs retention.ms=not-a-number: accepted, want INVALID_CONFIG")
		}
	}
	if c := topicConfig(f, ctx, adm, "retention.ms"); c != nil && c.MaybeValue() != retentionValue {
		f.addf("after a rejected AlterTopicConfigs: retention.ms = %q, want %s", c.MaybeValue(), retentionValue)
	}

	// CreatePartitions: 3 -> 5; the new partitions are empty and usable.
	cp, err := adm.CreatePartitions(ctx, 2, adminTopic)
	if err != nil {
		f.addf("CreatePartitions: %v", err)
	} else if r, err := cp.On(adminTopic, nil); err != nil || r.Err != nil {
		f.addf("CreatePartitions %s: %v %v (%s)", adminTopic, err, r.Err, r.ErrMessage)
	}
	waitForLeaders(ctx, adm, adminTopic, adminPartitions+2)
	lo, err = adm.ListEndOffsets(ctx, adminTopic)
	checkOffsets(f, "ListEndOffsets after CreatePartitions", lo, err,
		map[int32]int64{0: adminPerPart, 1: adminPerPart, 2: adminPerPart, 3: 0, 4: 0})
	// Shrinking is not allowed.
	if cp, err := adm.UpdatePartitions(ctx, 2, adminTopic); err == nil {
		if r, err := cp.On(adminTopic, nil); err == nil && r.Err == nil {
			f.addf("UpdatePartitions to 2 of 5: accepted, want INVALID_PARTITIONS")
		}
	}

	// DeleteRecords: partition 0's log start moves to deleteBefore; reads begin there.
	var del kadm.Offsets
	del.Add(kadm.Offset{Topic: adminTopic, Partition: 0, At: deleteBefore})
	dr, err := adm.DeleteRecords(ctx, del)
	if err != nil {
		f.addf("DeleteRecords: %v", err)
	} else if r, ok := dr[adminTopic][0]; !ok {
		f.addf("DeleteRecords: no result for partition 0")
	} else if r.Err != nil {
		f.addf("DeleteRecords partition 0: %v", r.Err)
	} else if r.LowWatermark != deleteBefore {
		f.addf("DeleteRecords partition 0: low watermark %d, want %d", r.LowWatermark, deleteBefore)
	}
	lo, err = adm.ListStartOffsets(ctx, adminTopic)
	checkOffsets(f, "ListStartOffsets after DeleteRecords", lo, err,
		map[int32]int64{0: deleteBefore, 1: 0, 2: 0, 3: 0, 4: 0})
	lo, err = adm.ListEndOffsets(ctx, adminTopic)
	checkOffsets(f, "ListEndOffsets after DeleteRecords", lo, err,
		map[int32]int64{0: adminPerPart, 1: adminPerPart, 2: adminPerPart})
	checkFirstOffset(f, ctx, deleteBefore)

	// DeleteTopics: the topic disappears from metadata and from ListTopics.
	dt, err := adm.DeleteTopics(ctx, adminTopic)
	if err != nil {
		f.addf("DeleteTopics: %v", err)
	} else if r, err := dt.On(adminTopic, nil); err != nil || r.Err != nil {
		f.addf("DeleteTopics %s: %v %v (%s)", adminTopic, err, r.Err, r.ErrMessage)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		ls, err := adm.ListTopics(ctx)
		if err == nil && !ls.Has(adminTopic) {
			break
		}
		if time.Now().After(deadline) {
			f.addf("DeleteTopics: %s still listed after 30s (err %v)", adminTopic, err)
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	// franz-go answers per-topic metadata from a short-lived client-side cache, so poll
	// (bounded) until a fresh Metadata response stops describing the topic.
	for {
		n, err := partitionCount(ctx, adm, adminTopic)
		if err != nil || n < 0 {
			break
		}
		if time.Now().After(deadline) {
			f.addf("Metadata after DeleteTopics: %s still has %d partitions", adminTopic, n)
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Deleting it again reports UNKNOWN_TOPIC_OR_PARTITION.
	if dt, err := adm.DeleteTopics(ctx, adminTopic); err == nil {
		if r, err := dt.On(adminTopic, nil); err == nil && r.Err == nil {
			f.addf("DeleteTopics of a deleted topic: no error, want UNKNOWN_TOPIC_OR_PARTITION")
		}
	}
	fmt.Printf("admin checks done: mismatches=%d\n", f.count())
}

// checkFirstOffset consumes partition 0 of adminTopic from the start and checks that the
// first record is at offset want, with the key produced there.
func checkFirstOffset(f *failures, ctx context.Context, want int64) {
	cl := newClient(kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{
		adminTopic: {0: kgo.NewOffset().AtStart()},
	}))
	defer cl.Close()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		fetches := cl.PollFetches(pctx)
		cancel()
		recs := fetches.Records()
		if len(recs) == 0 {
			continue
		}
		if recs[0].Offset != want {
			f.addf("consume after DeleteRecords: first offset %d, want %d", recs[0].Offset, want)
		}
		if k := fmt.Sprintf("k0-%d", want); string(recs[0].Key) != k {
			f.addf("consume after DeleteRecords: first key %q, want %q", recs[0].Key, k)
		}
		return
	}
	f.addf("consume after DeleteRecords: no record within 30s")
}
