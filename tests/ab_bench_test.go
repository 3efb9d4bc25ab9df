package tests

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/actormesh/actormesh/core"
	"github.com/actormesh/actormesh/transport"
)

// EnvABBootstrap names another build of the bootstrap binary for
// BenchmarkCastGather64AB; `make bench-ab AB_REF=<revision>` builds one.
const EnvABBootstrap = "ACTORMESH_AB_BOOTSTRAP"

// BenchmarkCastGather64AB compares the procs of two builds on
// BenchmarkCastGather64's gather: one mesh of this tree's bootstrap
// binary, one of $ACTORMESH_AB_BOOTSTRAP's, both up at once, gathered
// from in alternation by one client. On a shared machine, runs made one
// after the other differ by 10% or more from one minute to the next; an
// alternation within one run sees both builds through the same minutes,
// so their ratio holds to about 1.5%. Only the procs' code differs (the
// client is this tree's), so the two builds must share the wire format.
//
// Both meshes together press the caches harder than one does, so each
// gather takes longer than in BenchmarkCastGather64: read the ratio, not
// the times.
func BenchmarkCastGather64AB(b *testing.B) {
	other := os.Getenv(EnvABBootstrap)
	if other == "" {
		b.Skipf("%s is not set (see make bench-ab)", EnvABBootstrap)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	proc, err := core.DirectProc(transport.Unix.Any(), "root", nil)
	if err != nil {
		b.Fatal(err)
	}
	defer proc.Shutdown(ctx)
	inst, _, err := proc.Instance("client")
	if err != nil {
		b.Fatal(err)
	}
	hmThis := allocHostMesh(ctx, b, inst, bootstrapBin, "this", 8)
	defer hmThis.Shutdown(ctx, inst)
	hmOther := allocHostMesh(ctx, b, inst, other, "other", 8)
	defer hmOther.Shutdown(ctx, inst)
	amThis, amOther := gatherMesh(ctx, b, inst, hmThis), gatherMesh(ctx, b, inst, hmOther)

	timed := func(gather func()) time.Duration {
		start := time.Now()
		gather()
		return time.Since(start)
	}
	gatherThis := func() { gatherIDs(ctx, b, inst, amThis) }
	gatherOther := func() { gatherIDs(ctx, b, inst, amOther) }
	for range 100 { // warm every connection up
		gatherThis()
		gatherOther()
	}
	b.ResetTimer()
	var dThis, dOther time.Duration
	for i := 0; i < b.N; i++ {
		// Each goes first in turn: the second of a pair finds the client
		// warmer.
		if i%2 == 0 {
			dThis += timed(gatherThis)
			dOther += timed(gatherOther)
		} else {
			dOther += timed(gatherOther)
			dThis += timed(gatherThis)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(dThis.Microseconds())/float64(b.N), "this-µs/gather")
	b.ReportMetric(float64(dOther.Microseconds())/float64(b.N), "other-µs/gather")
	b.ReportMetric(float64(dOther)/float64(dThis), "other/this")
}
