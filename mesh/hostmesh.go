package mesh

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/actormesh/actormesh/alloc"
	"github.com/actormesh/actormesh/core"
	"github.com/vmihailenco/msgpack/v5"
)

// HostMesh is a set of hosts laid out on an extent. Each host is a
// bootstrap child running a HostAgent that launches procs on request.
type HostMesh struct {
	name   string
	extent alloc.Extent
	hosts  []core.ActorID // host agents, by rank
	alloc  alloc.Alloc    // nil when attached to hosts owned elsewhere

	monitorDone chan struct{}
	// gone[r] closes once the allocator saw host r exit; nil when attached.
	gone []chan struct{}

	mu        sync.Mutex
	procMesh  []*ProcMesh
	hostDead  map[int]string
	shutdown  bool
	allocErrs []error
}

// HostMeshOptions configures AllocateHostMesh.
type HostMeshOptions struct {
	// Command launches the hosts' procs; empty means the host's own
	// executable (the bootstrap binary).
	Command alloc.BootstrapCommand
}

// AllocateHostMesh drives a until every rank runs, then turns each
// allocated proc into a host by spawning a HostAgent on it. The host mesh
// owns the alloc from then on: Shutdown stops it.
func AllocateHostMesh(ctx context.Context, inst *core.Instance, a alloc.Alloc, name string, opts *HostMeshOptions) (*HostMesh, error) {
	if !core.ValidName(name) {
		return nil, fmt.Errorf("mesh: invalid host mesh name %q", name)
	}
	extent := a.Extent()
	n := extent.NumRanks()
	rankOf := map[string]int{}
	running := make([]*alloc.Running, n)
	for ready := 0; ready < n; {
		ev, err := a.Next(ctx)
		if err != nil {
			return nil, abandon(a, fmt.Errorf("mesh: allocating host mesh %q: %w", name, err))
		}
		switch e := ev.(type) {
		case alloc.Created:
			rankOf[e.Key] = e.Point.Rank()
		case alloc.Running:
			r, ok := rankOf[e.Key]
			if !ok || running[r] != nil {
				return nil, abandon(a, fmt.Errorf("mesh: allocating host mesh %q: unexpected %v", name, e))
			}
			running[r] = &e
			ready++
		case alloc.Stopped:
			return nil, abandon(a, fmt.Errorf("mesh: allocating host mesh %q: rank %d %v", name, rankOf[e.Key], e.Reason))
		case alloc.Failed:
			return nil, abandon(a, fmt.Errorf("mesh: allocating host mesh %q: %s", name, e.Description))
		}
	}

	var params HostAgentParams
	if opts != nil {
		params.Command = opts.Command
	}
	raw, err := msgpack.Marshal(params)
	if err != nil {
		return nil, abandon(a, err)
	}
	// The agent of every allocated proc spawns a HostAgent: this is the
	// trampoline that makes the bootstrap child a host.
	results := make([]*core.OnceReceiver[SpawnResult], n)
	for r, run := range running {
		port, rx := core.OpenOncePort[SpawnResult](inst)
		results[r] = rx
		msg := SpawnActor{Name: HostAgentName, Type: HostAgentType, Params: raw, Reply: port.Bind(), Rank: r}
		if err := (core.ActorRef{ID: run.Agent}).Send(inst, msg); err != nil {
			return nil, abandon(a, err)
		}
	}
	hosts := make([]core.ActorID, n)
	for r, rx := range results {
		res, err := rx.Recv(ctx)
		if err == nil && res.Err != "" {
			err = errors.New(res.Err)
		}
		if err != nil {
			return nil, abandon(a, fmt.Errorf("mesh: starting the host agent of rank %d: %w", r, err))
		}
		// The agent must live in the process the allocator started for this
		// rank, or we would be driving somebody else's host.
		if res.Actor.Proc.Addr != running[r].Addr {
			return nil, abandon(a, fmt.Errorf("mesh: host agent of rank %d is %s, not at the allocated address %s", r, res.Actor, running[r].Addr))
		}
		hosts[r] = res.Actor
	}
	hm := &HostMesh{name: name, extent: extent, hosts: hosts, alloc: a, monitorDone: make(chan struct{}), hostDead: map[int]string{}}
	hm.gone = make([]chan struct{}, n)
	for r := range hm.gone {
		hm.gone[r] = make(chan struct{})
	}
	go hm.monitor(rankOf)
	return hm, nil
}

// abandon stops a half-made allocation so that nothing is left running.
func abandon(a alloc.Alloc, err error) error {
	ctx, cancel := context.WithTimeout(context.Background(), alloc.DefaultProcessExitTimeout+5e9)
	defer cancel()
	if serr := a.StopAndWait(ctx); serr != nil {
		return errors.Join(err, fmt.Errorf("mesh: stopping the allocation: %w", serr))
	}
	return err
}

// AttachHostMesh makes a host mesh of hosts that are already running
// (for example those of another host mesh that was stopped). It does not
// own their allocation.
func AttachHostMesh(name string, extent alloc.Extent, hosts []core.ActorID) (*HostMesh, error) {
	if extent.NumRanks() != len(hosts) {
		return nil, fmt.Errorf("mesh: extent %s has %d ranks, got %d hosts", extent, extent.NumRanks(), len(hosts))
	}
	done := make(chan struct{})
	close(done)
	return &HostMesh{name: name, extent: extent, hosts: append([]core.ActorID(nil), hosts...), monitorDone: done, hostDead: map[int]string{}}, nil
}

// monitor consumes the alloc's events while the mesh lives: a host that
// dies fails every proc on it.
func (hm *HostMesh) monitor(rankOf map[string]int) {
	defer close(hm.monitorDone)
	for {
		ev, err := hm.alloc.Next(context.Background())
		if err != nil {
			if !errors.Is(err, alloc.ErrDone) {
				hm.mu.Lock()
				hm.allocErrs = append(hm.allocErrs, err)
				hm.mu.Unlock()
			}
			return
		}
		stopped, ok := ev.(alloc.Stopped)
		if !ok {
			continue
		}
		rank := rankOf[stopped.Key]
		select {
		case <-hm.gone[rank]:
		default:
			close(hm.gone[rank])
		}
		hm.mu.Lock()
		expected := hm.shutdown
		if !expected {
			hm.hostDead[rank] = stopped.Reason.String()
		}
		meshes := append([]*ProcMesh(nil), hm.procMesh...)
		hm.mu.Unlock()
		if expected {
			continue
		}
		logger().Error("host died", "mesh", hm.name, "rank", rank, "reason", stopped.Reason.String())
		for _, pm := range meshes {
			pm.hostDied(rank, stopped.Reason.String())
		}
	}
}

// Name is the mesh's name.
func (hm *HostMesh) Name() string { return hm.name }

// Extent is the hosts' extent.
func (hm *HostMesh) Extent() alloc.Extent { return hm.extent }

// Hosts lists the host agents in rank order, for AttachHostMesh.
func (hm *HostMesh) Hosts() []core.ActorID { return append([]core.ActorID(nil), hm.hosts...) }

// Spawn starts a proc mesh with perHost procs on every host: its extent is
// the hosts' followed by perHost, and the proc for local rank r on each
// host is named "{name}_{r}". Spawning the name of a mesh this host mesh
// runs returns that mesh. Each proc is a new OS process, whose Go
// runtime gets an equal share of its host's CPUs (GOMAXPROCS = the host's
// CPUs / perHost, at least 1) unless GOMAXPROCS is set in the hosts'
// environment.
func (hm *HostMesh) Spawn(ctx context.Context, inst *core.Instance, name string, perHost alloc.Extent) (*ProcMesh, error) {
	if !core.ValidName(name) {
		return nil, fmt.Errorf("mesh: invalid proc mesh name %q", name)
	}
	extent, err := hm.extent.Concat(perHost)
	if err != nil {
		return nil, fmt.Errorf("mesh: proc mesh %q: %w", name, err)
	}
	hm.mu.Lock()
	if hm.shutdown {
		hm.mu.Unlock()
		return nil, fmt.Errorf("mesh: host mesh %q is shut down", hm.name)
	}
	for _, live := range hm.procMesh {
		if live.name != name {
			continue
		}
		hm.mu.Unlock()
		// One handle per running mesh, as the hosts create a live proc
		// once: a second would miss the supervision events of the first.
		if !live.extent.Equal(extent) {
			return nil, fmt.Errorf("mesh: proc mesh %q is running with extent %v, not %v", name, live.extent, extent)
		}
		return live, nil
	}
	var deadHosts []error
	for _, r := range slices.Sorted(maps.Keys(hm.hostDead)) {
		deadHosts = append(deadHosts, fmt.Errorf("host %d died: %s", r, hm.hostDead[r]))
	}
	hm.mu.Unlock()
	if len(deadHosts) > 0 {
		return nil, fmt.Errorf("mesh: spawning proc mesh %q: %w", name, errors.Join(deadHosts...))
	}
	pm := newProcMesh(name, hm, extent, inst)
	local := perHost.NumRanks()
	replies := make([]*core.OnceReceiver[ProcInfo], extent.NumRanks())
	// fail undoes what Spawn began, whatever state the caller's ctx is in:
	// the procs asked for so far, the reply ports, the monitor.
	fail := func(err error) (*ProcMesh, error) {
		for _, rx := range replies {
			if rx != nil {
				rx.Close()
			}
		}
		stopCtx, cancel := context.WithTimeout(context.Background(), 2*defaultTerminateTimeout+5*time.Second)
		defer cancel()
		if serr := pm.Stop(stopCtx, inst); serr != nil {
			err = errors.Join(err, serr)
		}
		return nil, fmt.Errorf("mesh: spawning proc mesh %q: %w", name, err)
	}
	for h, host := range hm.hosts {
		for r := 0; r < local; r++ {
			rank := h*local + r
			port, rx := core.OpenOncePort[ProcInfo](inst)
			replies[rank] = rx
			msg := CreateProc{Name: fmt.Sprintf("%s_%d", name, r), Mesh: name, Rank: rank, Supervisor: pm.procEvents.Bind(), Reply: port.Bind(), Share: local}
			if err := (core.ActorRef{ID: host}).Send(inst, msg); err != nil {
				return fail(fmt.Errorf("rank %d: %w", rank, err))
			}
			pm.procs[rank] = procRef{host: h, name: msg.Name}
		}
	}
	var errs []error
	for rank, rx := range replies {
		info, err := recvFromHost(ctx, hm, rank/local, rx)
		switch {
		case err != nil:
			rx.Close()
			errs = append(errs, fmt.Errorf("rank %d: %w", rank, err))
		case info.Status != ProcReady:
			errs = append(errs, fmt.Errorf("rank %d: %s", rank, info.Cause()))
		default:
			pm.procs[rank].id = info.ProcID
			pm.procs[rank].agent = info.Agent
			pm.procs[rank].pid = info.PID
		}
	}
	if len(errs) > 0 {
		return fail(errors.Join(errs...))
	}
	hm.mu.Lock()
	if hm.shutdown { // Shutdown began while the procs spawned
		hm.mu.Unlock()
		return fail(fmt.Errorf("host mesh %q is shut down", hm.name))
	}
	hm.procMesh = append(hm.procMesh, pm)
	dead := maps.Clone(hm.hostDead)
	hm.mu.Unlock()
	for rank, reason := range dead {
		pm.hostDied(rank, reason)
	}
	return pm, nil
}

// Stop stops every proc this host mesh spawned; the hosts stay up, and
// Spawn (or AttachHostMesh) can use them again.
func (hm *HostMesh) Stop(ctx context.Context, inst *core.Instance) error {
	hm.mu.Lock()
	meshes := hm.procMesh
	hm.procMesh = nil
	hm.mu.Unlock()
	var errs []error
	for _, pm := range meshes {
		if err := pm.Stop(ctx, inst); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// forget drops pm, which stopped, from the meshes that host deaths and
// Stop reach.
func (hm *HostMesh) forget(pm *ProcMesh) {
	hm.mu.Lock()
	defer hm.mu.Unlock()
	hm.procMesh = slices.DeleteFunc(hm.procMesh, func(m *ProcMesh) bool { return m == pm })
}

// Shutdown drains every host (stopping all their procs), shuts the hosts
// down and stops the allocation: no OS process of the mesh remains.
func (hm *HostMesh) Shutdown(ctx context.Context, inst *core.Instance) error {
	hm.mu.Lock()
	if hm.shutdown {
		// Again, perhaps after one that ran out of time: wait for what
		// that one began.
		hm.mu.Unlock()
		if err := hm.awaitAlloc(ctx); err != nil {
			return fmt.Errorf("mesh: shutting down host mesh %q: %w", hm.name, err)
		}
		return nil
	}
	hm.shutdown = true
	meshes := hm.procMesh
	hm.procMesh = nil
	hm.mu.Unlock()
	for _, pm := range meshes {
		pm.closeMonitor()
	}

	var errs []error
	steps := []func(core.PortRef[DrainResult]) any{
		func(r core.PortRef[DrainResult]) any { return DrainHost{Reply: r} },
	}
	if hm.alloc == nil {
		// Hosts owned elsewhere exit on ShutdownHost. Our own allocation's
		// hosts are ended by stopping it, below: the allocator's stop is
		// acknowledged by a host still running, whereas one sent to a host
		// that already left would hold the allocator's connection open
		// until its flush gives up.
		steps = append(steps, func(r core.PortRef[DrainResult]) any { return ShutdownHost{Reply: r} })
	}
	for _, step := range steps {
		replies := make([]*core.OnceReceiver[DrainResult], len(hm.hosts))
		for r, host := range hm.hosts {
			if _, dead := hm.hostDead[r]; dead {
				continue
			}
			port, rx := core.OpenOncePort[DrainResult](inst)
			replies[r] = rx
			if err := (core.ActorRef{ID: host}).Send(inst, step(port.Bind())); err != nil {
				errs = append(errs, err)
			}
		}
		for r, rx := range replies {
			if rx == nil {
				continue
			}
			res, err := recvFromHost(ctx, hm, r, rx)
			if errors.Is(err, errHostGone) {
				// Already exited (a ShutdownHost from another mesh of
				// these hosts, or a crash): nothing of it remains to stop.
				rx.Close()
				continue
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("host %d: %w", r, err))
				rx.Close()
				continue
			}
			for _, f := range res.Failed {
				errs = append(errs, fmt.Errorf("host %d: %s", r, f))
			}
		}
	}
	if hm.alloc != nil {
		hm.alloc.Stop()
		if err := hm.awaitAlloc(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("mesh: shutting down host mesh %q: %w", hm.name, errors.Join(errs...))
	}
	return nil
}

// awaitAlloc waits until the stopped allocation has ended (every host
// process reaped), if the mesh owns one.
func (hm *HostMesh) awaitAlloc(ctx context.Context) error {
	if hm.alloc == nil {
		return nil
	}
	select {
	case <-hm.monitorDone:
	case <-ctx.Done():
		return fmt.Errorf("mesh: waiting for the allocation to stop: %w", ctx.Err())
	}
	hm.mu.Lock()
	defer hm.mu.Unlock()
	return errors.Join(hm.allocErrs...)
}

var errHostGone = errors.New("mesh: the host exited")

// recvFromHost waits for host r's answer, or until the allocator saw the
// host exit (errHostGone), which the answer would never outlive.
func recvFromHost[T any](ctx context.Context, hm *HostMesh, r int, rx *core.OnceReceiver[T]) (T, error) {
	if hm.gone == nil {
		return rx.Recv(ctx)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-hm.gone[r]:
			cancel(errHostGone)
		case <-done:
		}
	}()
	res, err := rx.Recv(ctx)
	if err != nil && errors.Is(context.Cause(ctx), errHostGone) {
		return res, errHostGone
	}
	return res, err
}
