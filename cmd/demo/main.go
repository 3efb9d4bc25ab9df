// Command demo runs Monarch's canonical flow end to end and prints each
// step as it happens, with timings and the OS process tree: allocate hosts
// as bootstrap children, spawn a proc mesh (one OS process per proc), spawn
// an actor mesh, cast and gather replies, shut everything down.
//
// It re-executes itself as the bootstrap binary, so it needs nothing else.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/actormesh/actormesh/alloc"
	"github.com/actormesh/actormesh/core"
	"github.com/actormesh/actormesh/internal/testutil"
	"github.com/actormesh/actormesh/mesh"
	"github.com/actormesh/actormesh/mesh/testactor"
	"github.com/actormesh/actormesh/transport"
)

const childEnv = "ACTORMESH_DEMO_CHILD"

func main() {
	if os.Getenv(childEnv) == "1" {
		os.Exit(mesh.BootstrapMain())
	}
	hosts := flag.Int("hosts", 2, "number of hosts (bootstrap children)")
	procs := flag.Int("procs", 2, "procs per host")
	flag.Parse()
	if err := run(*hosts, *procs); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(hosts, procs int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	last := start
	step := func(n int, format string, args ...any) {
		now := time.Now()
		fmt.Printf("[%7.1f ms | +%6.1f ms] %d) %s\n", ms(now.Sub(start)), ms(now.Sub(last)), n, fmt.Sprintf(format, args...))
		last = now
	}

	self, err := os.Executable()
	if err != nil {
		return err
	}
	os.Setenv(childEnv, "1") // inherited by the children: they run BootstrapMain
	fmt.Printf("actormesh demo: %d hosts × %d procs, bootstrap binary %s (pid %d)\n\n", hosts, procs, self, os.Getpid())

	proc, err := core.DirectProc(transport.Unix.Any(), "root", nil)
	if err != nil {
		return err
	}
	defer proc.Shutdown(context.Background())
	step(1, "root proc %s", proc.ID())

	inst, _, err := proc.Instance("client")
	if err != nil {
		return err
	}
	step(2, "client instance %s", inst.ID())

	allocator := alloc.NewProcessAllocator(alloc.Command{Path: self})
	step(3, "process allocator for %s", self)

	a, err := allocator.Allocate(ctx, alloc.Spec{Extent: alloc.MustExtent("hosts", hosts), Transport: transport.Unix})
	if err != nil {
		return err
	}
	step(4, "allocation %s requested (nothing started yet)", a.Extent())

	hm, err := mesh.AllocateHostMesh(ctx, inst, a, "demo", nil)
	if err != nil {
		return err
	}
	step(5, "host mesh with %d hosts: %v", len(hm.Hosts()), hm.Hosts())

	shutdown := func() error {
		err := hm.Shutdown(ctx, inst)
		return err
	}
	pm, err := hm.Spawn(ctx, inst, "p0", alloc.MustExtent("procs", procs))
	if err != nil {
		shutdown()
		return err
	}
	step(6, "proc mesh p0 %s: pids %v", pm.Extent(), pm.PIDs())

	am, err := mesh.Spawn[*testactor.TestActor](ctx, inst, pm, "a0", struct{}{})
	if err != nil {
		shutdown()
		return err
	}
	step(7, "actor mesh a0 of %d TestActors", len(am.Values()))

	vm, err := mesh.Call(ctx, inst, am, func(r core.PortRef[core.ActorID]) any { return testactor.GetActorID{Reply: r} })
	if err == nil {
		err = vm.Err()
	}
	if err != nil {
		shutdown()
		return err
	}
	step(8, "cast GetActorID and gathered %d replies:", len(vm.Values))
	for rank, id := range vm.Values {
		p, _ := vm.Extent.PointOfRank(rank)
		fmt.Printf("      rank %d (%s): %s\n", rank, p, id)
	}
	fmt.Println("\nOS process tree:")
	printTree(os.Getpid(), "  ")
	fmt.Println()

	if err := shutdown(); err != nil {
		return err
	}
	left := testutil.WaitNoDescendants(5 * time.Second)
	step(9, "shut down; processes left: %d", len(left))
	if len(left) > 0 {
		return fmt.Errorf("processes left behind: %v", left)
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func printTree(pid int, indent string) {
	p, err := testutil.ReadProc(pid)
	if err != nil {
		return
	}
	fmt.Printf("%s%d %s%s\n", indent, p.PID, p.Comm, role(pid))
	kids := testutil.Descendants(pid)
	sort.Slice(kids, func(i, j int) bool { return kids[i].PID < kids[j].PID })
	for _, k := range kids {
		if k.PPid == pid {
			printTree(k.PID, indent+"  ")
		}
	}
}

// role says what a process is, from the name the library gives it.
func role(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		return ""
	}
	for _, kv := range strings.Split(string(b), "\x00") {
		if v, ok := strings.CutPrefix(kv, alloc.EnvProcessName+"="); ok {
			return "  [" + v + "]"
		}
	}
	return "  [client]"
}
