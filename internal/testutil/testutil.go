// Package testutil holds what end-to-end tests share: building the
// bootstrap binary once per test binary, and checking that no OS process a
// test started is left behind, orphans included (see MarkRun).
package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// BuildBootstrap builds cmd/bootstrap into dir and returns its path.
func BuildBootstrap(dir string) (string, error) {
	return Build(dir, "bootstrap", "github.com/actormesh/actormesh/cmd/bootstrap")
}

// Build builds the Go package pkg into dir/name.
func Build(dir, name, pkg string, flags ...string) (string, error) {
	out := filepath.Join(dir, name)
	gobin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("building %s: the go command is not on PATH: %w", pkg, err)
	}
	args := append([]string{"build", "-o", out}, flags...)
	cmd := exec.Command(gobin, append(args, pkg)...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("building %s: %w", pkg, err)
	}
	return out, nil
}

// Descendants lists the live processes descended from pid (zombies
// included: an unreaped child is a leak too), read from /proc.
func Descendants(pid int) []Proc {
	children := map[int][]Proc{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := ReadProc(p)
		if err != nil {
			continue
		}
		children[st.PPid] = append(children[st.PPid], st)
	}
	var out []Proc
	var walk func(int)
	walk = func(parent int) {
		for _, c := range children[parent] {
			out = append(out, c)
			walk(c.PID)
		}
	}
	walk(pid)
	return out
}

// Proc is a process as /proc/PID/stat describes it.
type Proc struct {
	PID   int
	PPid  int
	State string
	Comm  string
	CPU   time.Duration // user and system time so far
}

func (p Proc) String() string { return fmt.Sprintf("%d(%s,%s)", p.PID, p.Comm, p.State) }

// ReadProc reads /proc/PID/stat.
func ReadProc(pid int) (Proc, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return Proc{}, err
	}
	s := string(b)
	open, close := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || close < open {
		return Proc{}, fmt.Errorf("malformed stat for %d", pid)
	}
	fields := strings.Fields(s[close+1:])
	if len(fields) < 2 {
		return Proc{}, fmt.Errorf("malformed stat for %d", pid)
	}
	ppid, _ := strconv.Atoi(fields[1])
	p := Proc{PID: pid, PPid: ppid, State: fields[0], Comm: s[open+1 : close]}
	if len(fields) > 12 {
		// utime and stime, in clock ticks: 100 a second on Linux.
		utime, _ := strconv.ParseInt(fields[11], 10, 64)
		stime, _ := strconv.ParseInt(fields[12], 10, 64)
		p.CPU = time.Duration(utime+stime) * 10 * time.Millisecond
	}
	return p, nil
}

// Alive reports whether pid exists and is not a zombie.
func Alive(pid int) bool {
	p, err := ReadProc(pid)
	return err == nil && p.State != "Z"
}

// SigIgnored reports whether pid ignores sig, from /proc/PID/status.
func SigIgnored(pid int, sig syscall.Signal) (bool, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return false, err
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "SigIgn:"); ok {
			mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				return false, fmt.Errorf("SigIgn of %d: %w", pid, err)
			}
			return mask&(1<<(uint(sig)-1)) != 0, nil
		}
	}
	return false, fmt.Errorf("no SigIgn in /proc/%d/status", pid)
}

// EnvRunMarker marks every process a test binary starts (see MarkRun).
const EnvRunMarker = "ACTORMESH_TEST_RUN"

// runMarker is this process's marker, once MarkRun has set it.
var runMarker string

// MarkRun gives this test binary's run a marker unique to it and puts it
// in the environment, so that every process started from now on inherits
// it: hosts, their procs, and whatever those start in turn. Leftovers
// then finds them wherever they are in the process tree, in particular
// once an orphan has been reparented to init, where the parent-pid walk
// of Descendants cannot see it. Call it first thing in TestMain, before
// anything is spawned. A test binary started by another one (with the
// marker already set) extends the inherited marker, so that the outer run
// still counts the inner run's processes as its own.
func MarkRun() string {
	if runMarker != "" {
		return runMarker // once per run: a second marker would hide the first one's processes
	}
	m := fmt.Sprintf("%d.%d", os.Getpid(), time.Now().UnixNano())
	if outer := os.Getenv(EnvRunMarker); outer != "" {
		m = outer + "/" + m
	}
	if err := os.Setenv(EnvRunMarker, m); err != nil {
		panic(err) // only for an invalid name, which a constant is not
	}
	runMarker = m
	return m
}

// Marker reads the run marker from a process's environment as it was
// when the process was exec'd (/proc/PID/environ).
func Marker(pid int) (string, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		return "", false
	}
	prefix := EnvRunMarker + "="
	for kv := range strings.SplitSeq(string(b), "\x00") {
		if v, ok := strings.CutPrefix(kv, prefix); ok {
			return v, true
		}
	}
	return "", false
}

// Marked lists the live (not zombie) processes that carry this run's
// marker or an inner run's, wherever they are in the process tree. It is
// empty until MarkRun was called.
func Marked() []Proc {
	if runMarker == "" {
		return nil
	}
	var out []Proc
	self := os.Getpid()
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		m, ok := Marker(pid) // unreadable (another user's) or gone: not ours
		if !ok || (m != runMarker && !strings.HasPrefix(m, runMarker+"/")) {
			continue
		}
		if st, err := ReadProc(pid); err == nil && st.State != "Z" {
			out = append(out, st)
		}
	}
	return out
}

// Leftovers lists the processes this test binary started that still
// exist: its descendants (zombies included), and the marked processes
// that escaped the tree.
func Leftovers() []Proc {
	out := Descendants(os.Getpid())
	seen := make(map[int]bool, len(out))
	for _, p := range out {
		seen[p.PID] = true
	}
	for _, p := range Marked() {
		if !seen[p.PID] {
			out = append(out, p)
		}
	}
	return out
}

// WaitNoLeftovers waits until Leftovers is empty, or the deadline passes;
// it returns those that remain.
func WaitNoLeftovers(timeout time.Duration) []Proc {
	deadline := time.Now().Add(timeout)
	for {
		left := Leftovers()
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(20 * time.Millisecond) // polling /proc: there is no event to wait on for a non-child
	}
}

// WaitNoDescendants is WaitNoLeftovers: it counts the marked orphans too,
// since a process that left the tree is still left behind.
func WaitNoDescendants(timeout time.Duration) []Proc {
	return WaitNoLeftovers(timeout)
}

// WaitDead waits until none of pids is alive (gone or a zombie), or the
// deadline passes; it returns those still alive.
func WaitDead(pids []int, timeout time.Duration) []int {
	deadline := time.Now().Add(timeout)
	for {
		var alive []int
		for _, pid := range pids {
			if Alive(pid) {
				alive = append(alive, pid)
			}
		}
		if len(alive) == 0 || time.Now().After(deadline) {
			return alive
		}
		time.Sleep(20 * time.Millisecond) // polling /proc: a non-child's death sends us no event
	}
}

// CPUTime is the CPU time used so far by the live processes among pids.
func CPUTime(pids []int) time.Duration {
	var total time.Duration
	for _, pid := range pids {
		if p, err := ReadProc(pid); err == nil {
			total += p.CPU
		}
	}
	return total
}

// Tree is pid and its live descendants.
func Tree(pid int) []int {
	pids := []int{pid}
	for _, d := range Descendants(pid) {
		pids = append(pids, d.PID)
	}
	return pids
}

// ContextSwitches is the number of context switches, voluntary or not, of
// every thread of the live processes among pids so far: a gather's cost
// on a small machine is mostly in waking threads.
func ContextSwitches(pids []int) int64 {
	var total int64
	for _, pid := range pids {
		tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		if err != nil {
			continue
		}
		for _, t := range tasks {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/status", pid, t.Name()))
			if err != nil {
				continue
			}
			for _, line := range strings.Split(string(b), "\n") {
				if v, ok := strings.CutPrefix(line, "voluntary_ctxt_switches:"); ok {
					n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
					total += n
				} else if v, ok := strings.CutPrefix(line, "nonvoluntary_ctxt_switches:"); ok {
					n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
					total += n
				}
			}
		}
	}
	return total
}
