package mesh_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/actormesh/actormesh/alloc"
	"github.com/actormesh/actormesh/core"
	"github.com/actormesh/actormesh/mesh"
	"github.com/actormesh/actormesh/mesh/testactor"
	"github.com/actormesh/actormesh/transport"
)

// The README's example, kept compiling here (it needs its own binary as
// the bootstrap program, so it is not run as a test; cmd/demo runs it).
func Example() {
	// A program that allocates hosts with itself as the bootstrap binary
	// must first let its children become hosts and procs.
	if os.Getenv(alloc.EnvBootstrapMode) != "" || os.Getenv(alloc.EnvBootstrapAddr) != "" {
		os.Exit(mesh.BootstrapMain())
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	proc, _ := core.DirectProc(transport.Unix.Any(), "root", nil)
	defer proc.Shutdown(ctx)
	client, _, _ := proc.Instance("client")

	self, _ := os.Executable()
	a, _ := alloc.NewProcessAllocator(alloc.Command{Path: self}).
		Allocate(ctx, alloc.Spec{Extent: alloc.MustExtent("hosts", 2)})
	hosts, err := mesh.AllocateHostMesh(ctx, client, a, "hosts", nil)
	if err != nil {
		log.Fatal(err)
	}
	defer hosts.Shutdown(ctx, client) // drains hosts, stops the allocation: nothing remains

	procs, _ := hosts.Spawn(ctx, client, "workers", alloc.MustExtent("gpus", 2))
	actors, _ := mesh.Spawn[*testactor.TestActor](ctx, client, procs, "a0", struct{}{})

	ids, _ := mesh.Call(ctx, client, actors, func(reply core.PortRef[core.ActorID]) any {
		return testactor.GetActorID{Reply: reply}
	})
	fmt.Println(ids.Values) // one ActorID per rank, in rank order
}
