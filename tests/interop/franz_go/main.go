// Command franz-go-interop drives a Varve broker with the franz-go client (kgo + kadm).
//
// Usage: franz-go-interop roundtrip|admin|txn   (bootstrap address from $VARVE_BOOTSTRAP)
//
//	roundtrip  every compression codec × acks (0, 1, all): create a 3-partition topic per
//	           combination with kadm, produce keyed records with headers and explicit
//	           CreateTime timestamps to explicitly chosen partitions, read them back with
//	           ConsumePartitions from the start and check every field.
//	admin      kadm ListStartOffsets/ListEndOffsets, DescribeTopicConfigs,
//	           AlterTopicConfigs, CreatePartitions, DeleteRecords, DeleteTopics and
//	           BrokerMetadata, each checked against Kafka's semantics.
//	txn        transactional producer: a committed and an aborted transaction read back
//	           read_committed and read_uncommitted, a GroupTransactSession
//	           consume-transform-produce copy with its group offsets, zombie fencing.
//
// Exit status 0 only if every check passed; failures are printed one per line.
package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// failures collects check failures so that a run reports all of them, not only the first.
type failures struct {
	lines []string
}

// addf records one failure; the first 50 are printed as they happen.
func (f *failures) addf(format string, args ...any) {
	if len(f.lines) < 50 {
		fmt.Fprintf(os.Stderr, "MISMATCH: "+format+"\n", args...)
	}
	f.lines = append(f.lines, fmt.Sprintf(format, args...))
}

func (f *failures) count() int { return len(f.lines) }

// fatalf stops the run: used for failures after which nothing further can be checked.
func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "FAIL: "+format+"\n", args...)
	os.Exit(1)
}

func bootstrap() []string {
	b := os.Getenv("VARVE_BOOTSTRAP")
	if b == "" {
		fatalf("VARVE_BOOTSTRAP is not set (run through tests/lib/with_broker.sh)")
	}
	return strings.Split(b, ",")
}

// baseOpts are the options of every client of these tests: the broker and bounded timeouts.
func baseOpts() []kgo.Opt {
	return []kgo.Opt{
		kgo.SeedBrokers(bootstrap()...),
		kgo.ClientID("varve-interop-franz-go"),
		kgo.DialTimeout(5 * time.Second),
		kgo.RequestTimeoutOverhead(10 * time.Second),
		kgo.RetryTimeout(30 * time.Second),
		kgo.MetadataMinAge(250 * time.Millisecond),
	}
}

// newClient builds a kgo client on the broker with bounded request timeouts, plus opts.
func newClient(opts ...kgo.Opt) *kgo.Client {
	cl, err := kgo.NewClient(append(baseOpts(), opts...)...)
	if err != nil {
		fatalf("kgo.NewClient: %v", err)
	}
	return cl
}

func main() {
	if len(os.Args) != 2 {
		fatalf("usage: %s roundtrip|admin|txn", os.Args[0])
	}
	var f failures
	start := time.Now()
	switch os.Args[1] {
	case "roundtrip":
		runRoundtrip(&f)
	case "admin":
		runAdmin(&f)
	case "txn":
		runTxn(&f)
	default:
		fatalf("unknown scenario %q", os.Args[1])
	}
	if f.count() > 0 {
		fmt.Printf("franz-go %s: FAILED with %d mismatches in %.1fs\n", os.Args[1], f.count(), time.Since(start).Seconds())
		os.Exit(1)
	}
	fmt.Printf("franz-go %s: OK in %.1fs\n", os.Args[1], time.Since(start).Seconds())
}

// createTopic creates a topic with kadm and fails the run if the broker rejects it. The
// replication factor is 1, or $VARVE_REPLICATION_FACTOR when set (the cluster variants).
func createTopic(ctx context.Context, adm *kadm.Client, topic string, partitions int32) {
	rf := int16(1)
	if v := os.Getenv("VARVE_REPLICATION_FACTOR"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 32767 {
			fatalf("VARVE_REPLICATION_FACTOR=%q is not a replication factor", v)
		}
		rf = int16(n)
	}
	resp, err := adm.CreateTopics(ctx, partitions, rf, nil, topic)
	if err != nil {
		fatalf("CreateTopics %s: %v", topic, err)
	}
	r, ok := resp[topic]
	if !ok {
		fatalf("CreateTopics %s: no result for the topic in the response", topic)
	}
	if r.Err != nil {
		fatalf("CreateTopics %s: %v (%s)", topic, r.Err, r.ErrMessage)
	}
	if r.NumPartitions != -1 && r.NumPartitions != partitions {
		fatalf("CreateTopics %s: response says %d partitions, asked for %d", topic, r.NumPartitions, partitions)
	}
}

// waitForLeaders polls metadata until every partition of topic has a leader (bounded).
func waitForLeaders(ctx context.Context, adm *kadm.Client, topic string, partitions int) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		md, err := adm.Metadata(ctx, topic)
		if err == nil {
			if td, ok := md.Topics[topic]; ok && td.Err == nil && len(td.Partitions) == partitions {
				ready := true
				for _, p := range td.Partitions {
					if p.Err != nil || p.Leader < 0 {
						ready = false
					}
				}
				if ready {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			fatalf("topic %s: partitions without a leader after 30s (last metadata error: %v)", topic, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
