package mesh

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/actormesh/actormesh/alloc"
	"github.com/actormesh/actormesh/core"
	"github.com/actormesh/actormesh/transport"
	"golang.org/x/sys/unix"
)

// A host is what a bootstrap child becomes: its proc runs a HostAgent,
// which launches each proc of a proc mesh as a new OS process (this
// executable in proc mode), tracks it, and stops it in stages.

// HostAgentName is the HostAgent's actor name on its host's proc.
const HostAgentName = "host_agent"

// HostAgentType is the HostAgent's registered actor type.
const HostAgentType = "mesh.HostAgent"

// Environment knobs of hosts.
const (
	// EnvTerminateTimeout is each stage's grace period when a host stops a
	// proc: ask its agent, then SIGTERM, then SIGKILL (default 5s).
	EnvTerminateTimeout = "HYPERACTOR_MESH_TERMINATE_TIMEOUT"
	// EnvSpawnReadyTimeout bounds how long a launched proc may take to
	// call back (default 30s, as Monarch's; 0 waits forever). A proc that
	// misses it is killed and fails, so its creator gets an error rather
	// than waiting on its own deadline.
	EnvSpawnReadyTimeout = "HYPERACTOR_HOST_SPAWN_READY_TIMEOUT"
)

const (
	defaultTerminateTimeout = 5 * time.Second
	defaultReadyTimeout     = 30 * time.Second
)

// ProcStatus is a host-managed proc's lifecycle state. The order matters:
// a waiter asks for "at least" a status.
type ProcStatus int

const (
	ProcStarting ProcStatus = iota // launched, not yet running
	ProcRunning                    // the OS process runs
	ProcReady                      // its agent called back
	ProcStopping                   // termination has begun
	ProcStopped                    // exited (see ExitCode)
	ProcKilled                     // killed by a signal
	ProcFailed                     // could not be started or configured
)

func (s ProcStatus) String() string {
	switch s {
	case ProcStarting:
		return "starting"
	case ProcRunning:
		return "running"
	case ProcReady:
		return "ready"
	case ProcStopping:
		return "stopping"
	case ProcStopped:
		return "stopped"
	case ProcKilled:
		return "killed"
	case ProcFailed:
		return "failed"
	}
	return "status(" + strconv.Itoa(int(s)) + ")"
}

// Terminal reports whether the proc is gone for good.
func (s ProcStatus) Terminal() bool { return s >= ProcStopped }

// ProcInfo describes one proc of a host.
type ProcInfo struct {
	Name     string
	Mesh     string
	Rank     int
	Status   ProcStatus
	ProcID   core.ProcID
	Agent    core.ActorID
	PID      int
	ExitCode int
	Signal   int
	// Requested is true when the proc was stopped on request rather than
	// dying on its own.
	Requested bool
	Reason    string
	// StderrTail holds the proc's last output lines.
	StderrTail []string
}

// Cause describes how a terminated proc ended, for error messages.
func (p ProcInfo) Cause() string {
	var s string
	switch p.Status {
	case ProcKilled:
		s = fmt.Sprintf("proc %s was killed by signal %d (%s)", p.Name, p.Signal, syscall.Signal(p.Signal))
	case ProcStopped:
		s = fmt.Sprintf("proc %s exited with code %d", p.Name, p.ExitCode)
	case ProcFailed:
		s = fmt.Sprintf("proc %s failed: %s", p.Name, p.Reason)
	default:
		s = fmt.Sprintf("proc %s is %s", p.Name, p.Status)
	}
	if len(p.StderrTail) > 0 {
		s += "; last output:\n  " + joinLines(p.StderrTail, "\n  ")
	}
	return s
}

func joinLines(lines []string, sep string) string {
	out := ""
	for i, l := range lines {
		if i > 0 {
			out += sep
		}
		out += l
	}
	return out
}

// HostAgent messages.
type (
	// CreateProc launches proc Name (idempotent by name) and replies once
	// it is ready or has failed. Supervisor, if set, hears of its death.
	CreateProc struct {
		Name       string
		Mesh       string
		Rank       int
		Supervisor core.PortRef[ProcEvent]
		Reply      core.PortRef[ProcInfo]
		// Share, when positive, is how many procs of its mesh the host
		// runs: the proc's Go runtime gets that share of the host's CPUs
		// (see procGOMAXPROCS).
		Share int `msgpack:",omitempty"`
	}
	// ProcCallback is the launched proc's callback.
	ProcCallback struct {
		Name   string
		ProcID core.ProcID
		Agent  core.ActorID
	}
	// GetProc replies with a proc's current info (Status ProcFailed and
	// Reason "unknown proc" for names never created).
	GetProc struct {
		Name  string
		Reply core.PortRef[ProcInfo]
	}
	// WaitProc replies once the proc's status is at least Min.
	WaitProc struct {
		Name  string
		Min   ProcStatus
		Reply core.PortRef[ProcInfo]
	}
	// StopProc stops a proc in stages and replies when it is gone.
	StopProc struct {
		Name   string
		Reason string
		Reply  core.PortRef[ProcInfo]
	}
	// ListProcs replies with every proc the host knows.
	ListProcs struct{ Reply core.PortRef[[]ProcInfo] }
	// DrainHost stops the procs of Mesh (all procs if Mesh is empty) and
	// replies when they are gone; the host stays up.
	DrainHost struct {
		Mesh  string
		Reply core.PortRef[DrainResult]
	}
	// ShutdownHost drains every proc, replies, and refuses new procs.
	ShutdownHost struct{ Reply core.PortRef[DrainResult] }
	// HostPing lets a proc check that its host is alive.
	HostPing struct{ Reply core.PortRef[bool] }
	// DrainResult says how a drain went.
	DrainResult struct {
		Stopped int
		Failed  []string
	}
	// ProcEvent tells a proc's supervisor that it terminated without
	// being asked to.
	ProcEvent struct {
		Host core.ActorID
		Info ProcInfo
	}
)

// procNotReady is a launched proc's readiness deadline, sent to its agent.
type procNotReady struct {
	name string
	pid  int
}

// procExited is the waiter goroutine's report to its agent.
type procExited struct {
	name     string
	pid      int
	exitCode int
	signal   int
	err      string
}

// HostAgentParams configures a HostAgent.
type HostAgentParams struct {
	// Command launches procs; empty Program means this executable with its
	// arguments and environment.
	Command alloc.BootstrapCommand
}

func init() {
	core.RegisterMessage[CreateProc]("mesh.CreateProc")
	core.RegisterMessage[ProcCallback]("mesh.ProcCallback")
	core.RegisterMessage[GetProc]("mesh.GetProc")
	core.RegisterMessage[WaitProc]("mesh.WaitProc")
	core.RegisterMessage[StopProc]("mesh.StopProc")
	core.RegisterMessage[ListProcs]("mesh.ListProcs")
	core.RegisterMessage[DrainHost]("mesh.DrainHost")
	core.RegisterMessage[ShutdownHost]("mesh.ShutdownHost")
	core.RegisterMessage[HostPing]("mesh.HostPing")
	core.RegisterMessage[ProcInfo]("mesh.ProcInfo")
	core.RegisterMessage[[]ProcInfo]("mesh.ProcInfos")
	core.RegisterMessage[DrainResult]("mesh.DrainResult")
	core.RegisterMessage[ProcEvent]("mesh.ProcEvent")
	core.RegisterActor(HostAgentType, func(p HostAgentParams) (*HostAgent, error) { return NewHostAgent(p) })
}

// HostAgent manages the procs of one host. Once ShutdownHost has drained
// it, it asks the program hosting its proc to end (core.Proc.RequestExit):
// RunHost's, or an allocated bootstrap child's.
type HostAgent struct {
	cmd          alloc.BootstrapCommand
	grace        time.Duration
	readyTimeout time.Duration // 0: none
	self         *core.Instance
	procs        map[string]*managedProc
	waiters      []procWaiter
	drains       []*drainOp
	shutdown     bool
}

type managedProc struct {
	info       ProcInfo
	share      int // CreateProc.Share
	cmd        *exec.Cmd
	supervisor *core.PortRef[ProcEvent]
	exited     chan struct{}
	output     *alloc.OutputTail
	stopping   bool
	readyTimer *time.Timer
	// failure, once set, is why the agent killed the proc; its exit then
	// counts as a failure with this reason.
	failure string
}

type procWaiter struct {
	name  string
	min   ProcStatus
	reply core.PortRef[ProcInfo]
}

type drainOp struct {
	// The procs as they were when the drain began: a name reused by a new
	// proc meanwhile is not this drain's business.
	procs  map[string]*managedProc
	result DrainResult
	reply  core.PortRef[DrainResult]
	after  func()
}

// NewHostAgent makes a HostAgent that launches procs with p.Command.
func NewHostAgent(p HostAgentParams) (*HostAgent, error) {
	cmd := p.Command
	if cmd.Program == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("mesh: host agent: finding this executable: %w", err)
		}
		cmd = alloc.BootstrapCommand{Program: exe, Args: os.Args[1:]}
	}
	grace := defaultTerminateTimeout
	if v := os.Getenv(EnvTerminateTimeout); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("mesh: %s=%q: want a positive duration such as 5s", EnvTerminateTimeout, v)
		}
		grace = d
	}
	ready := defaultReadyTimeout
	if v := os.Getenv(EnvSpawnReadyTimeout); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return nil, fmt.Errorf("mesh: %s=%q: want a duration such as 30s, or 0 for none", EnvSpawnReadyTimeout, v)
		}
		ready = d
	}
	return &HostAgent{cmd: cmd, grace: grace, readyTimeout: ready, procs: map[string]*managedProc{}}, nil
}

func (h *HostAgent) Init(cx *core.Context) error {
	h.self = cx.Instance
	return nil
}

func (h *HostAgent) Handle(cx *core.Context, msg any) error {
	switch m := msg.(type) {
	case CreateProc:
		h.create(cx, m)
	case ProcCallback:
		h.ready(m)
	case procExited:
		h.exited(m)
	case procNotReady:
		h.notReady(m)
	case GetProc:
		return m.Reply.Send(cx, h.info(m.Name))
	case WaitProc:
		h.waiters = append(h.waiters, procWaiter{name: m.Name, min: m.Min, reply: m.Reply})
		h.notify()
	case StopProc:
		h.stop(m.Name, m.Reason)
		h.waiters = append(h.waiters, procWaiter{name: m.Name, min: ProcStopped, reply: m.Reply})
		h.notify()
	case ListProcs:
		list := make([]ProcInfo, 0, len(h.procs))
		for _, p := range h.procs {
			list = append(list, p.info)
		}
		return m.Reply.Send(cx, list)
	case DrainHost:
		h.drain(m.Mesh, m.Reply, nil)
	case ShutdownHost:
		h.shutdown = true
		proc := cx.Proc()
		h.drain("", m.Reply, func() { proc.RequestExit() })
	case HostPing:
		return m.Reply.Send(cx, true)
	default:
		return fmt.Errorf("mesh: host agent: unexpected message %T", msg)
	}
	return nil
}

func (h *HostAgent) info(name string) ProcInfo {
	if p, ok := h.procs[name]; ok {
		return p.info
	}
	return ProcInfo{Name: name, Status: ProcFailed, Reason: "unknown proc"}
}

func (h *HostAgent) create(cx *core.Context, m CreateProc) {
	// Idempotent for a proc that lives or is on its way; a dead one only
	// holds its name until then, so a mesh stopped on this host can be
	// spawned again by the same name.
	if p, ok := h.procs[m.Name]; ok && !p.info.Status.Terminal() {
		if m.Supervisor != (core.PortRef[ProcEvent]{}) && p.supervisor == nil {
			sup := m.Supervisor
			p.supervisor = &sup
		}
		h.waiters = append(h.waiters, procWaiter{name: m.Name, min: ProcReady, reply: m.Reply})
		h.notify()
		return
	}
	p := &managedProc{info: ProcInfo{Name: m.Name, Mesh: m.Mesh, Rank: m.Rank, Status: ProcStarting}, share: m.Share, exited: make(chan struct{})}
	if m.Supervisor != (core.PortRef[ProcEvent]{}) {
		sup := m.Supervisor
		p.supervisor = &sup
	}
	h.procs[m.Name] = p
	h.waiters = append(h.waiters, procWaiter{name: m.Name, min: ProcReady, reply: m.Reply})
	if h.shutdown {
		p.info.Status, p.info.Reason = ProcFailed, "host is shut down"
		close(p.exited)
		h.notify()
		return
	}
	if err := h.launch(cx, p); err != nil {
		p.info.Status, p.info.Reason = ProcFailed, err.Error()
		close(p.exited)
	}
	h.notify()
}

// procGOMAXPROCS is the GOMAXPROCS a proc gets when it is one of share
// procs of a mesh on this host: an equal part of the host's CPUs (as this
// process sees them, which respects a container's CPU limit), at least
// one, or 0 (leave it alone) when the environment sets GOMAXPROCS or share
// is not known. Procs that each believe they own every CPU keep threads
// spinning against each other: on a host running more procs than CPUs,
// that costs more than the work. Launchers of other runtimes do the same
// (torchrun gives each local rank OMP_NUM_THREADS=1).
func procGOMAXPROCS(env []string, share int) int {
	if share <= 0 {
		return 0
	}
	for _, kv := range env {
		if strings.HasPrefix(kv, "GOMAXPROCS=") {
			return 0
		}
	}
	return max(1, runtime.GOMAXPROCS(0)/share)
}

func (h *HostAgent) launch(cx *core.Context, p *managedProc) error {
	mode := alloc.BootstrapMode{Proc: &alloc.ProcMode{
		ProcID:       core.ProcID{Addr: cx.ID().Proc.Addr, Name: p.info.Name}.String(),
		CallbackAddr: cx.ID().Proc.Addr,
		HostAgent:    cx.ID().String(),
	}}
	encoded, err := mode.Encode()
	if err != nil {
		return err
	}
	cmd := exec.Command(h.cmd.Program, h.cmd.Args...)
	if h.cmd.Arg0 != "" {
		cmd.Args[0] = h.cmd.Arg0
	}
	env := os.Environ()
	for k, v := range h.cmd.Env {
		env = append(env, k+"="+v)
	}
	if n := procGOMAXPROCS(env, p.share); n > 0 {
		env = append(env, "GOMAXPROCS="+strconv.Itoa(n))
	}
	cmd.Env = append(env,
		alloc.EnvBootstrapMode+"="+encoded,
		alloc.EnvProcessName+"="+p.info.Name,
		alloc.EnvParentPID+"="+strconv.Itoa(os.Getpid()),
	)
	// Its own process group, so that termination reaches whatever the proc
	// itself started; and the parent-death signal from the start (the proc
	// asks for it again itself, which closes no gap but covers exec).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if alloc.PdeathsigEnabled(cmd.Env) {
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	}
	// A process it started outside its group, holding the pipes open,
	// must not keep Wait from reporting the proc's exit.
	cmd.WaitDelay = 2 * time.Second
	p.output = alloc.NewOutputTail(fmt.Sprintf("[%s] ", p.info.Name), os.Stderr, alloc.DefaultTailLines)
	cmd.Stdout = p.output
	cmd.Stderr = p.output
	if err := alloc.StartCommand(cmd); err != nil {
		return fmt.Errorf("mesh: launching proc %s: %w", p.info.Name, err)
	}
	p.cmd = cmd
	p.info.PID = cmd.Process.Pid
	p.info.Status = ProcRunning
	self, name, pid := h.self, p.info.Name, cmd.Process.Pid
	if h.readyTimeout > 0 {
		p.readyTimer = time.AfterFunc(h.readyTimeout, func() { self.Self().Send(self, procNotReady{name: name, pid: pid}) })
	}
	go func() {
		awaitExit(pid)
		// Until Wait reaps the proc, its pid still names its process
		// group: what the proc started and left there goes with it,
		// rather than outliving it and holding its output open.
		syscall.Kill(-pid, syscall.SIGKILL)
		err := cmd.Wait()
		ev := procExited{name: name, pid: pid}
		var ee *exec.ExitError
		switch {
		case err == nil:
		case errors.Is(err, exec.ErrWaitDelay):
			// It exited with 0, but something it started outside its
			// group still holds its output.
			logger().Warn("proc exited; its output is still held open", "proc", name, "pid", pid)
		case errors.As(err, &ee):
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				ev.signal = int(ws.Signal())
			} else {
				ev.exitCode = ee.ExitCode()
			}
		default:
			ev.err = err.Error()
		}
		p.output.Flush()
		close(p.exited)
		// The agent may be stopping too; then Cleanup has already reaped.
		self.Self().Send(self, ev)
	}()
	return nil
}

// awaitExit returns once the child pid has exited, leaving it unreaped.
func awaitExit(pid int) {
	var info unix.Siginfo
	for unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil) == unix.EINTR {
	}
}

func (h *HostAgent) ready(m ProcCallback) {
	p, ok := h.procs[m.Name]
	if !ok || p.info.Status.Terminal() || p.info.Status == ProcStopping || p.failure != "" {
		return
	}
	if p.readyTimer != nil {
		p.readyTimer.Stop()
	}
	p.info.ProcID, p.info.Agent, p.info.Status = m.ProcID, m.Agent, ProcReady
	h.notify()
}

// notReady kills a proc that missed its readiness deadline. Its status
// changes when it is reaped, so that whoever hears of the failure knows
// the process is gone.
func (h *HostAgent) notReady(m procNotReady) {
	p, ok := h.procs[m.name]
	if !ok || p.info.PID != m.pid || p.info.Status >= ProcReady || p.failure != "" {
		return
	}
	p.failure = fmt.Sprintf("not ready within %v (%s); killed", h.readyTimeout, EnvSpawnReadyTimeout)
	logger().Error("proc not ready in time", "proc", p.info.Name, "pid", m.pid, "timeout", h.readyTimeout)
	syscall.Kill(-m.pid, syscall.SIGKILL)
}

func (h *HostAgent) exited(m procExited) {
	p, ok := h.procs[m.name]
	if !ok || p.info.PID != m.pid || p.info.Status.Terminal() {
		return
	}
	if p.readyTimer != nil {
		p.readyTimer.Stop()
	}
	switch {
	case p.failure != "":
		p.info.Status, p.info.Reason = ProcFailed, p.failure
	case m.err != "":
		p.info.Status, p.info.Reason = ProcFailed, m.err
	case m.signal != 0:
		p.info.Status, p.info.Signal = ProcKilled, m.signal
	default:
		p.info.Status, p.info.ExitCode = ProcStopped, m.exitCode
	}
	p.info.Requested = p.stopping
	p.info.StderrTail = p.output.Lines()
	if !p.stopping && p.supervisor != nil {
		if err := p.supervisor.Send(h.self, ProcEvent{Host: h.self.ID(), Info: p.info}); err != nil {
			logger().Warn("proc supervisor unreachable", "proc", p.info.Name, "error", err)
		}
	}
	h.notify()
}

// stop starts the staged termination of a proc, once.
func (h *HostAgent) stop(name, reason string) {
	p, ok := h.procs[name]
	if !ok || p.stopping || p.info.Status.Terminal() {
		return
	}
	p.stopping = true
	ready := p.info.Status == ProcReady
	agent := p.info.Agent
	p.info.Status = ProcStopping
	p.info.Reason = reason
	if p.cmd == nil {
		return
	}
	go terminate(h.self, p.cmd.Process.Pid, ready, agent, reason, h.grace, p.exited)
}

// terminate asks the proc's agent to stop all actors, then SIGTERMs the
// proc's process group, then SIGKILLs it, each after a grace period.
func terminate(self *core.Instance, pid int, ready bool, agent core.ActorID, reason string, grace time.Duration, exited <-chan struct{}) {
	wait := func() bool {
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-exited:
			return true
		case <-t.C:
			return false
		}
	}
	if ready {
		port, rx := core.OpenOncePort[int](self)
		if err := (core.ActorRef{ID: agent}).Send(self, StopAll{Reason: reason, Timeout: grace, Reply: port.Bind()}); err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), grace)
			rx.Recv(ctx)
			cancel()
		}
		rx.Close()
		if wait() {
			return
		}
	}
	syscall.Kill(-pid, syscall.SIGTERM)
	if wait() {
		return
	}
	syscall.Kill(-pid, syscall.SIGKILL)
	<-exited
}

func (h *HostAgent) drain(mesh string, reply core.PortRef[DrainResult], after func()) {
	op := &drainOp{procs: map[string]*managedProc{}, reply: reply, after: after}
	for name, p := range h.procs {
		if mesh != "" && p.info.Mesh != mesh {
			continue
		}
		if p.info.Status == ProcFailed {
			// Its creator (or supervisor) has heard why already; reporting
			// it again would fail every later drain for good.
			delete(h.procs, name)
			continue
		}
		op.procs[name] = p
		h.stop(name, "host draining")
	}
	h.drains = append(h.drains, op)
	h.notify()
}

// notify answers every waiter and drain whose condition now holds.
func (h *HostAgent) notify() {
	kept := h.waiters[:0]
	for _, w := range h.waiters {
		info := h.info(w.name)
		_, known := h.procs[w.name]
		if !known || info.Status >= w.min {
			if err := w.reply.Send(h.self, info); err != nil {
				logger().Warn("host agent reply failed", "proc", w.name, "error", err)
			}
			continue
		}
		kept = append(kept, w)
	}
	h.waiters = kept

	keptDrains := h.drains[:0]
	for _, op := range h.drains {
		done := true
		for _, p := range op.procs {
			if !p.info.Status.Terminal() {
				done = false
				break
			}
		}
		if !done {
			keptDrains = append(keptDrains, op)
			continue
		}
		for name, p := range op.procs {
			if p.info.Status == ProcStopped || p.info.Status == ProcKilled {
				op.result.Stopped++
			} else {
				op.result.Failed = append(op.result.Failed, p.info.Cause())
			}
			if h.procs[name] == p {
				delete(h.procs, name)
			}
		}
		op.reply.Send(h.self, op.result)
		if op.after != nil {
			op.after()
		}
	}
	h.drains = keptDrains
}

// Cleanup kills whatever procs remain, so that a stopping host leaves no
// process behind, and reaps them.
func (h *HostAgent) Cleanup(cx *core.Context, err error) error {
	for _, p := range h.procs {
		if p.readyTimer != nil {
			p.readyTimer.Stop()
		}
		if p.cmd == nil || p.info.Status.Terminal() {
			continue
		}
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	}
	for _, p := range h.procs {
		if p.cmd == nil {
			continue
		}
		select {
		case <-p.exited:
		case <-time.After(h.grace):
			logger().Error("proc did not exit after SIGKILL", "proc", p.info.Name, "pid", p.info.PID)
		}
	}
	return nil
}

// RunHost is the body of a standalone host process (host mode): it serves
// a proc at m.Addr with a ProcAgent and a HostAgent, and returns once the
// host was shut down (when m.ExitOnShutdown) or ctx ends.
func RunHost(ctx context.Context, m *alloc.HostMode) (int, error) {
	if err := alloc.WatchParent(); err != nil {
		return 1, err
	}
	addr := m.Addr
	if addr.Transport == 0 {
		addr = transport.Unix.Any()
	}
	// Without ExitOnShutdown no one is asked to exit: a ShutdownHost
	// drains the host, which then takes no more procs, and the process
	// stays until ctx ends (or its parent does).
	var opts core.ProcOptions
	shut := make(chan struct{})
	if m.ExitOnShutdown {
		opts.OnExitRequest = func() { close(shut) } // called at most once
	}
	p, err := core.DirectProc(addr, "host", &opts)
	if err != nil {
		return 1, err
	}
	defer shutdownProc(p)
	if _, err := StartProcAgent(p); err != nil {
		return 1, err
	}
	var params HostAgentParams
	if m.Command != nil {
		params.Command = *m.Command
	}
	agent, err := NewHostAgent(params)
	if err != nil {
		return 1, err
	}
	h, err := p.Spawn(HostAgentName, agent)
	if err != nil {
		return 1, err
	}
	// Whoever started the host learns where to reach it on stdout.
	fmt.Println(h.ID())
	select {
	case <-shut:
	case <-h.Done():
		return 1, fmt.Errorf("mesh: host agent ended (%v) before the host was shut down", h.Status())
	case <-ctx.Done():
	}
	return 0, nil
}
