package alloc

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/actormesh/actormesh/core"
	"github.com/actormesh/actormesh/transport"
)

// LocalAllocator runs every proc inside the calling process: for tests and
// single-process programs. Its events follow the same protocol as the
// process allocator's, with each Created at once followed by Running.
type LocalAllocator struct {
	// StartAgent starts each proc's agent; nil spawns DefaultAgentType.
	StartAgent func(*core.Proc) (core.ActorID, error)
	// ProcOptions configures each proc.
	ProcOptions *core.ProcOptions
	// StopTimeout bounds each proc's graceful shutdown on Stop (default 5s).
	StopTimeout time.Duration
}

// NewLocalAllocator returns an in-process allocator.
func NewLocalAllocator() *LocalAllocator { return &LocalAllocator{StopTimeout: 5 * time.Second} }

// Allocate returns at once; procs start on the first Next.
func (la *LocalAllocator) Allocate(ctx context.Context, spec Spec) (Alloc, error) {
	if spec.Transport == 0 {
		spec.Transport = transport.Unix
	}
	if spec.ProcName != "" && !core.ValidName(spec.ProcName) {
		return nil, fmt.Errorf("alloc: invalid proc name %q", spec.ProcName)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("alloc: allocate: %w", err)
	}
	cfg := *la
	if cfg.StartAgent == nil {
		cfg.StartAgent = startDefaultAgent
	}
	if cfg.StopTimeout <= 0 {
		cfg.StopTimeout = 5 * time.Second
	}
	return &localAlloc{cfg: cfg, spec: spec, name: shortID(), events: newEventQueue()}, nil
}

type localAlloc struct {
	cfg    LocalAllocator
	spec   Spec
	name   string
	events *eventQueue
	start  sync.Once

	mu       sync.Mutex
	started  bool
	stopping bool
	procs    []localProc
}

type localProc struct {
	key  string
	proc *core.Proc
}

func (a *localAlloc) Extent() Extent { return a.spec.Extent }
func (a *localAlloc) Name() string   { return a.name }
func (a *localAlloc) Spec() Spec     { return a.spec }

func (a *localAlloc) StopAndWait(ctx context.Context) error { return stopAndWait(ctx, a) }

func (a *localAlloc) Next(ctx context.Context) (Event, error) {
	a.start.Do(a.startProcs)
	return a.events.next(ctx)
}

func (a *localAlloc) startProcs() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.stopping {
		return
	}
	a.started = true
	for rank := 0; rank < a.spec.Extent.NumRanks(); rank++ {
		point, _ := a.spec.Extent.PointOfRank(rank)
		key := shortID()
		name := procName(a.spec, a.name, rank)
		addr := a.spec.Transport.Any()
		p, err := core.DirectProc(addr, name, a.cfg.ProcOptions)
		if err != nil {
			a.events.push(Failed{Description: fmt.Sprintf("rank %d: %v", rank, err)})
			return
		}
		a.procs = append(a.procs, localProc{key: key, proc: p})
		a.events.push(Created{Key: key, Point: point, PID: os.Getpid()})
		agent, err := a.cfg.StartAgent(p)
		if err != nil {
			a.events.push(Failed{Description: fmt.Sprintf("rank %d: %v", rank, err)})
			return
		}
		a.events.push(Running{Key: key, ProcID: p.ID(), Agent: agent, Addr: p.Addr()})
	}
}

// Stop shuts every proc down in the background; Next reports each as
// Stopped and then ErrDone.
func (a *localAlloc) Stop() {
	a.mu.Lock()
	if a.stopping {
		a.mu.Unlock()
		return
	}
	a.stopping = true
	procs := a.procs
	a.mu.Unlock()
	go func() {
		var wg sync.WaitGroup
		reasons := make([]StopReason, len(procs))
		for i, lp := range procs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), a.cfg.StopTimeout)
				defer cancel()
				if err := lp.proc.Shutdown(ctx); err != nil {
					reasons[i] = StopReason{Kind: StopWatchdog, Watchdog: "stop timeout", Detail: err.Error()}
					slog.Warn("alloc: local proc shutdown forced", "proc", lp.proc.ID(), "error", err)
					return
				}
				reasons[i] = StopReason{Kind: StopClean}
			}()
		}
		wg.Wait()
		for i, lp := range procs {
			a.events.push(Stopped{Key: lp.key, Reason: reasons[i]})
		}
		a.events.close()
	}()
}
