// Package testutil holds what end-to-end tests share: building the
// bootstrap binary once per test binary, and checking that no OS process a
// test started is left behind.
package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
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

// WaitNoDescendants waits until this process has no descendants left, or
// the deadline passes; it returns those that remain.
func WaitNoDescendants(timeout time.Duration) []Proc {
	deadline := time.Now().Add(timeout)
	for {
		left := Descendants(os.Getpid())
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(20 * time.Millisecond) // polling /proc: there is no event to wait on for a non-child
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
