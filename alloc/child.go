package alloc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/actormesh/actormesh/core"
	"github.com/actormesh/actormesh/transport"
	"golang.org/x/sys/unix"
)

// The agent every allocated proc runs unless told otherwise. alloc cannot
// import mesh (mesh imports alloc), so it names the agent's registered type.
const (
	DefaultAgentType = "mesh.ProcAgent"
	DefaultAgentName = "proc_agent"
)

// ChildConfig configures RunV0Child.
type ChildConfig struct {
	// StartAgent starts the agent on a freshly started proc. Nil spawns
	// the registered type DefaultAgentType as DefaultAgentName.
	StartAgent func(*core.Proc) (core.ActorID, error)
	// ProcOptions configures the started proc.
	ProcOptions *core.ProcOptions
	// Logger receives diagnostics (default slog.Default()).
	Logger *slog.Logger
	// Exit, once closed, asks the child to stop its proc and return 0, as
	// StopAndExit from the allocator does: how a host that the proc became
	// ends its own run. Nil: only the allocator ends it.
	Exit <-chan struct{}
}

// ErrParentGone is returned by the child entry points when the allocator
// process is gone.
var ErrParentGone = errors.New("alloc: the parent process is gone")

// startDefaultAgent spawns the registered agent type.
func startDefaultAgent(p *core.Proc) (core.ActorID, error) {
	h, err := p.SpawnType(DefaultAgentName, DefaultAgentType, nil)
	if err != nil {
		return core.ActorID{}, fmt.Errorf("alloc: starting the proc agent (is the mesh package linked in?): %w", err)
	}
	return h.ID(), nil
}

// RunV0Child is the child side of the v0 handshake, driven by the
// environment the ProcessAllocator set: it serves a control channel, says
// Hello, starts the proc it is asked for, heartbeats, and returns the exit
// code the allocator asked for. It never exits the process itself.
func RunV0Child(ctx context.Context, cfg ChildConfig) (int, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	mode, err := BootstrapModeFromEnv()
	if err != nil {
		return 2, err
	}
	if mode.V0ProcMesh == nil {
		return 2, fmt.Errorf("alloc: RunV0Child needs the V0ProcMesh bootstrap mode, not %s", mode.Name())
	}
	set := settings(mode.V0ProcMesh.Config)
	if err := watchParent(set); err != nil {
		return 1, err
	}
	addr, index, err := childIdentity()
	if err != nil {
		return 2, err
	}
	interval, err := set.duration(EnvHeartbeatInterval, DefaultHeartbeatInterval)
	if err != nil {
		return 2, err
	}
	hbTimeout, err := set.duration(EnvHeartbeatTimeout, DefaultHeartbeatTimeout)
	if err != nil {
		return 2, err
	}
	startTimeout, err := set.duration(EnvStartTimeout, DefaultStartTimeout)
	if err != nil {
		return 2, err
	}
	if interval <= 0 {
		interval = DefaultHeartbeatInterval
	}
	if err := probe(addr); err != nil {
		return 1, err
	}
	startAgent := cfg.StartAgent
	if startAgent == nil {
		startAgent = startDefaultAgent
	}

	// The control proc's delivery timeout is the heartbeat timeout: a
	// message to a dead allocator comes back as soon as we stop waiting.
	ctl, err := core.DirectProc(transport.Unix.Any(), childCtlProcName, &core.ProcOptions{
		Logger:    log,
		Transport: transport.Options{DeliveryTimeout: hbTimeout},
	})
	if err != nil {
		return 1, fmt.Errorf("alloc: serving the control channel: %w", err)
	}
	var procs []*core.Proc
	defer func() {
		// Bounded: this runs on every return path, including parent loss.
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		for _, p := range procs {
			p.Shutdown(sctx)
		}
		ctl.Shutdown(sctx)
	}()
	inbox := make(chan any, 8)
	loopDone := make(chan struct{})
	defer close(loopDone) // runs before the shutdown above: unblocks the control actor
	if _, err := ctl.Spawn(childCtlActor, &childControl{inbox: inbox, done: loopDone}); err != nil {
		return 1, fmt.Errorf("alloc: starting the control actor: %w", err)
	}
	client, _, err := ctl.Instance("client")
	if err != nil {
		return 1, fmt.Errorf("alloc: control client: %w", err)
	}
	boot := core.ActorRef{ID: bootstrapActorID(addr)}
	if err := boot.Send(client, Hello{Index: index, Addr: ctl.Addr()}); err != nil {
		return 1, fmt.Errorf("alloc: sending Hello: %w", err)
	}

	hbCtx, stopHB := context.WithCancel(ctx)
	defer stopHB()
	lost := make(chan error, 1)
	go heartbeat(hbCtx, client, boot, index, interval, hbTimeout, lost)

	startDeadline := time.NewTimer(startTimeout)
	defer startDeadline.Stop()
	started := false
	undeliverable := client.Undeliverables()
	for {
		select {
		case <-ctx.Done():
			return 1, fmt.Errorf("alloc: v0 child: %w", ctx.Err())
		case err := <-lost:
			return 1, err
		case <-startDeadline.C:
			if !started {
				return 1, fmt.Errorf("alloc: no StartProc from the allocator at %s within %s of Hello", addr, startTimeout)
			}
		case <-undeliverable.Notify():
			for {
				u, ok, _ := undeliverable.TryRecv()
				if !ok {
					break
				}
				if u.Dest.Actor == boot.ID {
					return 1, fmt.Errorf("%w: the allocator at %s is unreachable: %s", ErrParentGone, addr, u.Reason)
				}
			}
		case msg := <-inbox:
			switch m := msg.(type) {
			case StartProc:
				if started {
					log.Warn("alloc: ignoring a second StartProc", "proc", m.ProcID)
					continue
				}
				started = true
				startDeadline.Stop()
				p, agent, err := startProc(m, cfg.ProcOptions, startAgent)
				if p != nil {
					procs = append(procs, p)
				}
				if err != nil {
					return 1, err
				}
				reply := StartedProc{Index: index, ProcID: p.ID(), Agent: agent, Addr: p.Addr()}
				if err := boot.Send(client, reply); err != nil {
					return 1, fmt.Errorf("alloc: sending StartedProc: %w", err)
				}
			case StopAndExit:
				stopProcs(ctx, log, procs)
				return m.Code, nil
			case Exit:
				return m.Code, nil
			}
		case <-cfg.Exit:
			stopProcs(ctx, log, procs)
			return 0, nil
		}
	}
}

// stopProcs shuts the child's procs down gracefully, within a bound of its
// own: ctx may be done already, and a proc stopped for good still deserves
// the chance to flush what it sends.
func stopProcs(ctx context.Context, log *slog.Logger, procs []*core.Proc) {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	for _, p := range procs {
		if err := p.Shutdown(sctx); err != nil {
			log.Warn("alloc: proc did not stop in time", "proc", p.ID(), "error", err)
		}
	}
}

func startProc(m StartProc, opts *core.ProcOptions, startAgent func(*core.Proc) (core.ActorID, error)) (*core.Proc, core.ActorID, error) {
	t := m.Transport
	if t == 0 {
		t = transport.Unix
	}
	p, err := core.DirectProc(t.Any(), m.ProcID.Name, opts)
	if err != nil {
		return nil, core.ActorID{}, fmt.Errorf("alloc: starting proc %q: %w", m.ProcID.Name, err)
	}
	agent, err := startAgent(p)
	if err != nil {
		return p, core.ActorID{}, fmt.Errorf("alloc: proc %s: %w", p.ID(), err)
	}
	return p, agent, nil
}

// heartbeat proves every interval that the allocator still answers, and
// reports on lost when it does not within timeout. With pdeathsig off this
// is what ends an orphaned child.
func heartbeat(ctx context.Context, client *core.Instance, boot core.ActorRef, index int, interval, timeout time.Duration, lost chan<- error) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		ack, rx := core.OpenOncePort[bool](client)
		if err := boot.Send(client, Heartbeat{Index: index, Ack: ack.Bind()}); err != nil {
			lost <- fmt.Errorf("alloc: sending a heartbeat: %w", err)
			return
		}
		wctx, cancel := context.WithTimeout(ctx, timeout)
		_, err := rx.Recv(wctx)
		cancel()
		rx.Close()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			lost <- fmt.Errorf("%w: no heartbeat answer from the allocator at %s within %s", ErrParentGone, boot.ID.Proc.Addr, timeout)
			return
		}
	}
}

// childControl receives the allocator's messages for the child's loop.
type childControl struct {
	inbox chan<- any
	done  <-chan struct{} // the child's loop returned
}

func (c *childControl) Handle(cx *core.Context, msg any) error {
	switch msg.(type) {
	case StartProc, StopAndExit, Exit:
		select {
		case c.inbox <- msg:
		case <-c.done:
		}
	default:
		return fmt.Errorf("alloc: unexpected control message %T", msg)
	}
	return nil
}

// WatchParent asks the kernel to SIGKILL this process when its parent
// dies (unless HYPERACTOR_MESH_BOOTSTRAP_ENABLE_PDEATHSIG=false), and fails
// with ErrParentGone if the parent that started it (ACTORMESH_PARENT_PID)
// is already gone. Call it first thing in a child.
func WatchParent() error { return watchParent(nil) }

// watchParent asks the kernel to SIGKILL this process when its parent
// dies, then closes the race where the parent died before the request.
func watchParent(set settings) error {
	enabled, err := set.boolean(EnvEnablePdeathsig, true)
	if err != nil {
		return err
	}
	if !enabled {
		return nil
	}
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0); err != nil {
		return fmt.Errorf("alloc: prctl(PR_SET_PDEATHSIG): %w", err)
	}
	if want, ok := os.LookupEnv(EnvParentPID); ok {
		if ppid := os.Getppid(); strconv.Itoa(ppid) != want {
			return fmt.Errorf("%w: started by pid %s, now the parent is %d", ErrParentGone, want, ppid)
		}
	}
	return nil
}

// childIdentity reads the bootstrap address and index from the environment.
func childIdentity() (transport.Addr, int, error) {
	raw, ok := os.LookupEnv(EnvBootstrapAddr)
	if !ok || raw == "" {
		return transport.Addr{}, 0, fmt.Errorf("alloc: %s is not set: this program must be started by an allocator", EnvBootstrapAddr)
	}
	addr, err := transport.ParseAddr(raw)
	if err != nil {
		return transport.Addr{}, 0, fmt.Errorf("alloc: %s: %w", EnvBootstrapAddr, err)
	}
	if addr.IsAny() {
		return transport.Addr{}, 0, fmt.Errorf("alloc: %s=%q is not a concrete address", EnvBootstrapAddr, raw)
	}
	rawIndex := os.Getenv(EnvIndex)
	index, err := strconv.Atoi(rawIndex)
	if err != nil || index < 0 {
		return transport.Addr{}, 0, fmt.Errorf("alloc: %s=%q: want a non-negative integer", EnvIndex, rawIndex)
	}
	return addr, index, nil
}

// probe connects once to the allocator so that a wrong address fails at
// once with the OS's reason, instead of after the delivery timeout.
func probe(addr transport.Addr) error {
	var network string
	switch addr.Transport {
	case transport.Unix:
		network = "unix"
	case transport.TCP:
		network = "tcp"
	default:
		return fmt.Errorf("alloc: bootstrap address %s: want a unix or tcp address", addr)
	}
	c, err := net.DialTimeout(network, addr.Address, 5*time.Second)
	if err != nil {
		return fmt.Errorf("%w: cannot reach the allocator at %s: %w", ErrParentGone, addr, err)
	}
	c.Close()
	return nil
}

// RunHelloOnlyChild is the benchmark baseline's child: it dials the
// bootstrap address, sends one raw transport message ("hello INDEX") and
// waits for its stdin to close. It measures what any bootstrap costs at
// least: process start, runtime init, one connection and one round trip.
func RunHelloOnlyChild(ctx context.Context) (int, error) {
	if err := watchParent(nil); err != nil {
		return 1, err
	}
	addr, index, err := childIdentity()
	if err != nil {
		return 2, err
	}
	s, err := transport.Dial(addr, &transport.Options{DeliveryTimeout: 10 * time.Second})
	if err != nil {
		return 1, fmt.Errorf("alloc: hello-only: %w", err)
	}
	defer s.Close()
	if err := s.Send(ctx, []byte("hello "+strconv.Itoa(index))); err != nil {
		return 1, fmt.Errorf("alloc: hello-only: %w", err)
	}
	io.Copy(io.Discard, os.Stdin)
	return 0, nil
}
