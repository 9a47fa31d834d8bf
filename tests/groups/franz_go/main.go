// Command groups-franz-go-member is the franz-go member of the groups_mixed_clients test: a
// kgo consumer group member (range or roundrobin balancer, manual commits) that writes one
// line per event to OUTFILE:
//
//	ASSIGN p,p,...          after every assign/revoke/lost callback: the partitions it owns
//	REC partition offset key per processed record
//	COMMIT ok n | COMMIT err ...   after each processed poll batch (process, then commit)
//	CLOSED                  after a clean close (SIGTERM: leaves the group)
//
// Usage: groups-franz-go-member TOPIC GROUP range|roundrobin OUTFILE SLEEP_MS
// (bootstrap address from $VARVE_BOOTSTRAP; SLEEP_MS is a per-record processing delay).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// eventFile appends lines with one write(2) each, so they survive SIGKILL of this process.
type eventFile struct {
	mu sync.Mutex
	f  *os.File
}

func (e *eventFile) line(format string, args ...any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, err := e.f.WriteString(fmt.Sprintf(format, args...) + "\n"); err != nil {
		fmt.Fprintf(os.Stderr, "franz-go member: write: %v\n", err)
		os.Exit(1)
	}
}

func main() {
	if len(os.Args) != 6 {
		fmt.Fprintf(os.Stderr, "usage: %s TOPIC GROUP range|roundrobin OUTFILE SLEEP_MS\n", os.Args[0])
		os.Exit(2)
	}
	topic, group, strategy, path := os.Args[1], os.Args[2], os.Args[3], os.Args[4]
	sleepMs, err := strconv.Atoi(os.Args[5])
	if err != nil {
		fmt.Fprintf(os.Stderr, "bad SLEEP_MS %q\n", os.Args[5])
		os.Exit(2)
	}
	bootstrap := os.Getenv("VARVE_BOOTSTRAP")
	if bootstrap == "" {
		fmt.Fprintln(os.Stderr, "VARVE_BOOTSTRAP is not set")
		os.Exit(2)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		fmt.Fprintf(os.Stderr, "open %s: %v\n", path, err)
		os.Exit(1)
	}
	out := &eventFile{f: f}

	balancer := kgo.RangeBalancer()
	if strategy == "roundrobin" {
		balancer = kgo.RoundRobinBalancer()
	} else if strategy != "range" {
		fmt.Fprintf(os.Stderr, "unknown strategy %q\n", strategy)
		os.Exit(2)
	}

	var ownedMu sync.Mutex
	owned := map[int32]bool{}
	report := func(add bool, m map[string][]int32) {
		ownedMu.Lock()
		defer ownedMu.Unlock()
		for _, p := range m[topic] {
			if add {
				owned[p] = true
			} else {
				delete(owned, p)
			}
		}
		ps := make([]int, 0, len(owned))
		for p := range owned {
			ps = append(ps, int(p))
		}
		sort.Ints(ps)
		s := make([]string, len(ps))
		for i, p := range ps {
			s[i] = strconv.Itoa(p)
		}
		out.line("ASSIGN %s", strings.Join(s, ","))
	}

	cl, err := kgo.NewClient(
		kgo.SeedBrokers(strings.Split(bootstrap, ",")...),
		kgo.ClientID("groups-franz-go-member"),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic),
		kgo.Balancers(balancer),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.SessionTimeout(6*time.Second),
		kgo.HeartbeatInterval(time.Second),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) { report(true, m) }),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, m map[string][]int32) { report(false, m) }),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, m map[string][]int32) { report(false, m) }),
	)
	if err != nil {
		fmt.Fprintf(os.Stderr, "kgo.NewClient: %v\n", err)
		os.Exit(1)
	}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer cancel()

	for ctx.Err() == nil {
		fetches := cl.PollRecords(ctx, 100)
		fetches.EachError(func(t string, p int32, err error) {
			if ctx.Err() == nil {
				fmt.Fprintf(os.Stderr, "franz-go member: fetch %s/%d: %v\n", t, p, err)
			}
		})
		n := 0
		fetches.EachRecord(func(r *kgo.Record) {
			out.line("REC %d %d %s", r.Partition, r.Offset, string(r.Key))
			n++
			if sleepMs > 0 {
				time.Sleep(time.Duration(sleepMs) * time.Millisecond)
			}
		})
		if n > 0 {
			cctx, ccancel := context.WithTimeout(context.Background(), 30*time.Second)
			if err := cl.CommitUncommittedOffsets(cctx); err != nil {
				out.line("COMMIT err %v", err)
			} else {
				out.line("COMMIT ok %d", n)
			}
			ccancel()
		}
		cl.AllowRebalance()
	}
	cl.Close() // leaves the group
	out.line("CLOSED")
}
