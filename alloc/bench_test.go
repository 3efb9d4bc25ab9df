package alloc_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/actormesh/actormesh/alloc"
	"github.com/actormesh/actormesh/internal/testutil"
	"github.com/actormesh/actormesh/transport"
)

// BenchmarkAllocate measures Allocate until every rank is Running, and in
// the same iteration the baseline: fork/exec of the same binary in the
// hello-only mode until every child has dialled back and said hello. ns/op
// and alloc-ms/op cover the allocation, baseline-ms/op the baseline, and
// ratio is their quotient over the whole run.
func BenchmarkAllocate(b *testing.B) {
	for _, n := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("ranks=%d", n), func(b *testing.B) {
			var allocTotal, baseTotal time.Duration
			var rss int
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				baseTotal += baseline(b, n)
				b.StartTimer()
				d, kib := allocateOnce(b, n)
				allocTotal += d
				rss = kib
			}
			b.StopTimer()
			ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) / float64(b.N) }
			b.ReportMetric(ms(allocTotal), "alloc-ms/op")
			b.ReportMetric(ms(baseTotal), "baseline-ms/op")
			b.ReportMetric(float64(allocTotal)/float64(baseTotal), "ratio")
			b.ReportMetric(float64(rss)/1024, "child-rss-MiB")
			if fi, err := os.Stat(bootstrapBin); err == nil {
				b.ReportMetric(float64(fi.Size())/(1<<20), "binary-MiB")
			}
		})
	}
}

// allocateOnce runs one allocation of n ranks; the timer runs from
// Allocate until all are Running and is stopped for the teardown. It also
// returns rank 0's resident set once running.
func allocateOnce(b *testing.B, n int) (time.Duration, int) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := time.Now()
	pa := alloc.NewProcessAllocator(alloc.Command{Path: bootstrapBin})
	a, err := pa.Allocate(ctx, alloc.Spec{Extent: alloc.MustExtent("replicas", n)})
	if err != nil {
		b.Fatal(err)
	}
	running := 0
	pid0 := 0
	for running < n {
		ev, err := a.Next(ctx)
		if err != nil {
			b.Fatal(err)
		}
		switch ev := ev.(type) {
		case alloc.Running:
			running++
		case alloc.Created:
			if ev.Point.Rank() == 0 {
				pid0 = ev.PID
			}
		default:
			b.Fatalf("unexpected event %v", ev)
		}
	}
	d := time.Since(start)
	b.StopTimer()
	kib, _ := rssKiB(pid0)
	if err := a.StopAndWait(ctx); err != nil {
		b.Fatal(err)
	}
	b.StartTimer()
	return d, kib
}

// baseline forks n hello-only children and waits for all their hellos.
func baseline(b *testing.B, n int) time.Duration {
	d, err := testutil.HelloChildren(bootstrapBin, n, func(i int, addr transport.Addr) []string {
		return []string{
			alloc.EnvHelloOnly + "=1",
			alloc.EnvBootstrapAddr + "=" + addr.String(),
			alloc.EnvIndex + "=" + strconv.Itoa(i),
			alloc.EnvParentPID + "=" + strconv.Itoa(os.Getpid()),
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	return d
}
