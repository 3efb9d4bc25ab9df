package alloc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/actormesh/actormesh/core"
	"github.com/actormesh/actormesh/transport"
)

// Command is a template for a child's command line. An exec.Cmd runs only
// once, so the allocator builds a fresh one per child from this.
type Command struct {
	// Path is the program to run.
	Path string
	// Args are the arguments after the program name.
	Args []string
	// Env is added to the parent's environment (KEY=VALUE; later wins).
	Env []string
	// Dir is the working directory (default: the parent's).
	Dir string
}

func (c Command) String() string {
	return strings.Join(append([]string{c.Path}, c.Args...), " ")
}

// ProcessAllocator starts one OS process per rank, each running the v0
// bootstrap protocol (see RunV0Child).
type ProcessAllocator struct {
	cmd Command
	// HelloTimeout is how long a child may take to say Hello before it is
	// killed (default 30s).
	HelloTimeout time.Duration
	// ExitTimeout is how long a child may take to exit after a stop before
	// it is sent SIGTERM (default HYPERACTOR_PROCESS_EXIT_TIMEOUT, 10s).
	ExitTimeout time.Duration
	// KillGrace is the wait between SIGTERM and SIGKILL (default 5s).
	KillGrace time.Duration
	// Output receives the children's stdout and stderr, each line prefixed
	// with "[rank N] " (default os.Stderr).
	Output io.Writer
	// TailLines is how many stderr lines to keep per child (default 50).
	TailLines int
	// Logger receives diagnostics (default slog.Default()).
	Logger *slog.Logger
}

// NewProcessAllocator returns an allocator that runs cmd once per rank.
func NewProcessAllocator(cmd Command) *ProcessAllocator {
	return &ProcessAllocator{
		cmd:          cmd,
		HelloTimeout: DefaultHelloTimeout,
		ExitTimeout:  EnvDuration(EnvProcessExitTimeout, DefaultProcessExitTimeout),
		KillGrace:    5 * time.Second,
		Output:       os.Stderr,
		TailLines:    DefaultTailLines,
	}
}

// Allocate serves the allocation's bootstrap channel and returns; children
// start on the first Next.
func (pa *ProcessAllocator) Allocate(ctx context.Context, spec Spec) (Alloc, error) {
	if spec.Transport == 0 {
		spec.Transport = transport.Unix
	}
	if spec.Transport == transport.Local {
		return nil, errors.New("alloc: the process allocator cannot use the local transport: its procs live in other processes")
	}
	if spec.ProcName != "" && !core.ValidName(spec.ProcName) {
		return nil, fmt.Errorf("alloc: invalid proc name %q", spec.ProcName)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("alloc: allocate: %w", err)
	}
	a := &processAlloc{
		cfg:      *pa,
		spec:     spec,
		name:     shortID(),
		events:   newEventQueue(),
		done:     make(chan struct{}),
		children: make([]*child, 0, spec.Extent.NumRanks()),
	}
	if a.cfg.Logger == nil {
		a.cfg.Logger = slog.Default()
	}
	if a.cfg.HelloTimeout <= 0 {
		a.cfg.HelloTimeout = DefaultHelloTimeout
	}
	if a.cfg.ExitTimeout <= 0 {
		a.cfg.ExitTimeout = DefaultProcessExitTimeout
	}
	if a.cfg.KillGrace <= 0 {
		a.cfg.KillGrace = 5 * time.Second
	}
	a.log = a.cfg.Logger.With("alloc", a.name)
	// The bootstrap channel is always unix, whatever the procs serve: it
	// only ever talks to children on this host.
	bp, err := core.DirectProc(transport.Unix.Any(), bootstrapProcName, &core.ProcOptions{Logger: a.cfg.Logger})
	if err != nil {
		return nil, fmt.Errorf("alloc: serving the bootstrap channel: %w", err)
	}
	if _, err := bp.Spawn(bootstrapActor, &bootstrapHandler{a: a}); err != nil {
		bp.Shutdown(context.Background())
		return nil, fmt.Errorf("alloc: starting the bootstrap actor: %w", err)
	}
	client, _, err := bp.Instance("client")
	if err != nil {
		bp.Shutdown(context.Background())
		return nil, fmt.Errorf("alloc: bootstrap client: %w", err)
	}
	a.bproc, a.client = bp, client
	go a.drainUndeliverables()
	return a, nil
}

type processAlloc struct {
	cfg    ProcessAllocator
	spec   Spec
	name   string
	log    *slog.Logger
	events *eventQueue
	bproc  *core.Proc
	client *core.Instance
	start  sync.Once
	done   chan struct{} // closed once every child is reaped and the channel closed

	mu       sync.Mutex
	children []*child // by index, which is also the rank
	active   int      // children started (or being started) and not yet reaped
	spawning bool
	held     []Event // Running events held back until every rank is Created
	stopping bool
	failed   bool
	finished bool
}

type child struct {
	index  int
	key    string
	point  Point
	cmd    *exec.Cmd
	stdout *OutputTail
	stderr *OutputTail

	created      bool
	pendingHello *Hello
	helloed      bool
	ctl          core.ActorID
	running      bool
	exited       bool
	watchdog     *StopReason // set when the allocator decided to kill it
	helloTimer   *time.Timer
	stopTimer    *time.Timer
	killTimer    *time.Timer
}

func (a *processAlloc) Extent() Extent { return a.spec.Extent }
func (a *processAlloc) Name() string   { return a.name }
func (a *processAlloc) Spec() Spec     { return a.spec }

func (a *processAlloc) Next(ctx context.Context) (Event, error) {
	a.start.Do(func() {
		a.mu.Lock()
		a.spawning = true
		a.mu.Unlock()
		go a.spawnAll()
	})
	return a.events.next(ctx)
}

func (a *processAlloc) StopAndWait(ctx context.Context) error { return stopAndWait(ctx, a) }

// Stop asks every child to stop its procs and exit, and arms a watchdog
// per child. A child that has not said Hello yet has started nothing and
// cannot be asked: it is terminated at once, rather than after the
// watchdog's wait.
func (a *processAlloc) Stop() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.stopping {
		return
	}
	a.stopping = true
	for _, c := range a.children {
		if !c.created || c.exited {
			continue
		}
		if !c.helloed {
			a.terminateLocked(c, "stopped before its Hello")
			continue
		}
		a.send(c, StopAndExit{Code: 0})
		a.armStopWatchdogLocked(c)
	}
	a.checkDoneLocked()
}

func (a *processAlloc) spawnAll() {
	n := a.spec.Extent.NumRanks()
	for i := 0; i < n; i++ {
		a.mu.Lock()
		if a.stopping || a.failed {
			a.mu.Unlock()
			break
		}
		point, _ := a.spec.Extent.PointOfRank(i)
		c := &child{index: i, key: shortID(), point: point}
		a.children = append(a.children, c)
		a.active++
		a.mu.Unlock()

		err := a.startChild(c)

		a.mu.Lock()
		if err != nil {
			a.active--
			a.failed = true
			a.events.push(Failed{Description: fmt.Sprintf("spawn %s index: %d, command: %s: %v", c.key, i, a.cfg.cmd, err)})
			a.mu.Unlock()
			break
		}
		c.created = true
		a.events.push(Created{Key: c.key, Point: c.point, PID: c.cmd.Process.Pid})
		c.helloTimer = time.AfterFunc(a.cfg.HelloTimeout, func() {
			a.mu.Lock()
			defer a.mu.Unlock()
			// Timer.Stop at Hello can lose the race with the timer firing.
			if !c.helloed {
				a.terminateLocked(c, fmt.Sprintf("hello timeout: no Hello within %s", a.cfg.HelloTimeout))
			}
		})
		if c.pendingHello != nil {
			a.helloLocked(c, *c.pendingHello)
		}
		if a.stopping {
			a.armStopWatchdogLocked(c)
		}
		a.mu.Unlock()
		go a.wait(c)
	}
	a.mu.Lock()
	a.spawning = false
	for _, ev := range a.held {
		a.events.push(ev)
	}
	a.held = nil
	a.checkDoneLocked()
	a.mu.Unlock()
}

func (a *processAlloc) startChild(c *child) error {
	cmd := exec.Command(a.cfg.cmd.Path, a.cfg.cmd.Args...)
	cmd.Dir = a.cfg.cmd.Dir
	env := append(os.Environ(), a.cfg.cmd.Env...)
	mode, err := BootstrapMode{V0ProcMesh: &V0ProcMeshMode{Config: configSnapshot(env)}}.Encode()
	if err != nil {
		return err
	}
	host, _ := os.Hostname()
	env = append(env,
		EnvBootstrapAddr+"="+a.bproc.Addr().String(),
		EnvIndex+"="+strconv.Itoa(c.index),
		EnvBootstrapMode+"="+mode,
		EnvProcessName+"="+fmt.Sprintf("host rank:%d @%s", c.index, host),
		EnvParentPID+"="+strconv.Itoa(os.Getpid()),
	)
	cmd.Env = env
	prefix := fmt.Sprintf("[rank %d] ", c.index)
	c.stdout = NewOutputTail(prefix, a.cfg.Output, 0)
	c.stderr = NewOutputTail(prefix, a.cfg.Output, a.cfg.TailLines)
	cmd.Stdout, cmd.Stderr = c.stdout, c.stderr
	// A grandchild holding the pipes open must not keep Wait from
	// reporting the child's exit.
	cmd.WaitDelay = 2 * time.Second
	if PdeathsigEnabled(env) {
		// Also covers the window before the child's own prctl, and
		// commands that are not our bootstrap binary.
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	}
	c.cmd = cmd
	return StartCommand(cmd)
}

// configSnapshot passes the knobs the child cares about in the bootstrap
// mode too, for launchers that scrub the environment.
func configSnapshot(env []string) map[string]string {
	cfg := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "HYPERACTOR_") && k != EnvBootstrapMode && k != EnvBootstrapAddr && k != EnvIndex && k != EnvProcessName {
			cfg[k] = v
		}
	}
	return cfg
}

// PdeathsigEnabled reports whether env (a child's environment) leaves the
// parent-death signal on: it is, unless HYPERACTOR_MESH_BOOTSTRAP_ENABLE_PDEATHSIG
// is false.
func PdeathsigEnabled(env []string) bool {
	v, ok := envLookup(env, EnvEnablePdeathsig)
	if !ok || v == "" {
		return true
	}
	b, err := strconv.ParseBool(strings.ToLower(v))
	return err != nil || b
}

// wait reaps c and reports why it stopped.
func (a *processAlloc) wait(c *child) {
	werr := c.cmd.Wait()
	c.stdout.Flush()
	c.stderr.Flush()
	reason := exitReason(c.cmd.ProcessState, werr)
	reason.Tail = c.stderr.Lines()

	a.mu.Lock()
	defer a.mu.Unlock()
	c.exited = true
	for _, t := range []*time.Timer{c.helloTimer, c.stopTimer, c.killTimer} {
		if t != nil {
			t.Stop()
		}
	}
	if c.watchdog != nil {
		w := *c.watchdog
		w.Signal, w.CoreDumped, w.Code, w.Tail = reason.Signal, reason.CoreDumped, reason.Code, reason.Tail
		reason = w
	}
	a.active--
	if a.spawning && c.running {
		a.held = append(a.held, Stopped{Key: c.key, Reason: reason}) // after its held Running
	} else {
		a.events.push(Stopped{Key: c.key, Reason: reason})
	}
	a.checkDoneLocked()
}

func exitReason(ps *os.ProcessState, werr error) StopReason {
	if ps == nil {
		return StopReason{Kind: StopUnknown, Detail: fmt.Sprint(werr)}
	}
	ws, ok := ps.Sys().(syscall.WaitStatus)
	switch {
	case !ok:
		return StopReason{Kind: StopUnknown, Detail: ps.String()}
	case ws.Signaled():
		return StopReason{Kind: StopKilled, Signal: ws.Signal(), CoreDumped: ws.CoreDump()}
	case ws.Exited() && ws.ExitStatus() == 0:
		return StopReason{Kind: StopClean}
	case ws.Exited():
		return StopReason{Kind: StopExited, Code: ws.ExitStatus()}
	}
	return StopReason{Kind: StopUnknown, Detail: ps.String()}
}

func (a *processAlloc) armStopWatchdogLocked(c *child) {
	if c.stopTimer != nil {
		return
	}
	c.stopTimer = time.AfterFunc(a.cfg.ExitTimeout, func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		a.terminateLocked(c, fmt.Sprintf("stop timeout: not exited %s after the stop", a.cfg.ExitTimeout))
	})
}

// terminate sends SIGTERM, then SIGKILL after the grace period. Signals go
// through os.Process, which refuses once the child is reaped, so a reused
// pid is never hit.
func (a *processAlloc) terminateLocked(c *child, why string) {
	if c.exited || c.watchdog != nil {
		return
	}
	c.watchdog = &StopReason{Kind: StopWatchdog, Watchdog: why}
	a.log.Warn("alloc: terminating child", "rank", c.index, "pid", c.cmd.Process.Pid, "why", why)
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		a.log.Warn("alloc: SIGTERM failed", "rank", c.index, "error", err)
	}
	c.killTimer = time.AfterFunc(a.cfg.KillGrace, func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		if !c.exited {
			c.cmd.Process.Kill()
		}
	})
}

// checkDoneLocked finishes the allocation once it is stopping and every
// child is reaped: the bootstrap channel closes, then the event stream.
func (a *processAlloc) checkDoneLocked() {
	if !a.stopping || a.spawning || a.active > 0 || a.finished {
		return
	}
	a.finished = true
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := a.bproc.Shutdown(ctx); err != nil {
			a.log.Warn("alloc: bootstrap channel shutdown", "error", err)
		}
		a.events.close()
		close(a.done)
	}()
}

// send posts a control message to c's control actor.
func (a *processAlloc) send(c *child, msg any) {
	if err := (core.ActorRef{ID: c.ctl}).Send(a.client, msg); err != nil {
		a.log.Error("alloc: sending to child", "rank", c.index, "message", fmt.Sprintf("%T", msg), "error", err)
	}
}

func (a *processAlloc) childAt(index int) *child {
	if index < 0 || index >= len(a.children) {
		return nil
	}
	return a.children[index]
}

func (a *processAlloc) onHello(m Hello) {
	a.mu.Lock()
	defer a.mu.Unlock()
	c := a.childAt(m.Index)
	if c == nil {
		a.log.Warn("alloc: Hello from an unknown index", "index", m.Index, "addr", m.Addr)
		return
	}
	if !c.created {
		// The child was faster than Start's return; Created goes first.
		c.pendingHello = &m
		return
	}
	a.helloLocked(c, m)
}

func (a *processAlloc) helloLocked(c *child, m Hello) {
	if c.helloed || c.exited {
		return
	}
	c.helloed = true
	if c.helloTimer != nil {
		c.helloTimer.Stop()
	}
	c.ctl = childCtlActorID(m.Addr)
	if a.stopping {
		a.send(c, StopAndExit{Code: 0})
		return
	}
	a.send(c, StartProc{
		ProcID:    core.ProcID{Addr: m.Addr, Name: procName(a.spec, a.name, c.index)},
		Transport: a.spec.Transport,
	})
}

func (a *processAlloc) onStarted(m StartedProc) {
	a.mu.Lock()
	defer a.mu.Unlock()
	c := a.childAt(m.Index)
	if c == nil || !c.helloed || c.running || c.exited {
		return
	}
	c.running = true
	ev := Running{Key: c.key, ProcID: m.ProcID, Agent: m.Agent, Addr: m.Addr}
	if a.spawning {
		// Callers see every Created before any Running, whatever the
		// race between forking the last ranks and the first ones booting.
		a.held = append(a.held, ev)
		return
	}
	a.events.push(ev)
}

// drainUndeliverables logs control messages that never reached a child;
// the child's exit is reported by wait, so nothing else is needed.
func (a *processAlloc) drainUndeliverables() {
	for {
		u, err := a.client.Undeliverables().Recv(context.Background())
		if err != nil {
			return
		}
		a.log.Debug("alloc: control message undeliverable", "to", u.Dest, "type", u.Type, "reason", u.Reason)
	}
}

// bootstrapHandler is the allocator's end of the handshake.
type bootstrapHandler struct{ a *processAlloc }

func (h *bootstrapHandler) Handle(cx *core.Context, msg any) error {
	switch m := msg.(type) {
	case Hello:
		h.a.onHello(m)
	case StartedProc:
		h.a.onStarted(m)
	case Heartbeat:
		// Answered here, not by the event loop, so a busy caller never
		// looks dead to its children.
		if err := m.Ack.Send(cx, true); err != nil {
			h.a.log.Debug("alloc: heartbeat ack", "error", err)
		}
	default:
		h.a.log.Warn("alloc: unexpected message on the bootstrap channel", "type", fmt.Sprintf("%T", msg), "from", cx.Sender())
	}
	return nil
}

// HandleUndeliverable keeps late heartbeat acks (the child gave up or
// exited) from being logged as errors.
func (h *bootstrapHandler) HandleUndeliverable(cx *core.Context, u core.Undeliverable) error {
	h.a.log.Debug("alloc: bootstrap reply undeliverable", "to", u.Dest, "reason", u.Reason)
	return nil
}
