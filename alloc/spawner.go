package alloc

import (
	"os/exec"
	"runtime"
	"sync"
)

// Linux ties PR_SET_PDEATHSIG to the parent *thread* that forked the child:
// the signal fires when that thread exits, not when the process does. Go
// moves goroutines between threads and may retire threads, so a child forked
// from an arbitrary goroutine could be killed while its allocator lives on.
// Every child is therefore forked from one goroutine locked to its thread for
// the life of the process: that thread ends only with the process.

type spawnRequest struct {
	cmd  *exec.Cmd
	done chan error
}

var (
	spawnerOnce sync.Once
	spawnCh     chan spawnRequest
)

// StartCommand runs cmd.Start on the spawner thread. Use it for every
// child that asks for a parent-death signal (SysProcAttr.Pdeathsig or its
// own prctl), so that the signal means "the parent process died".
func StartCommand(cmd *exec.Cmd) error {
	spawnerOnce.Do(func() {
		spawnCh = make(chan spawnRequest)
		go spawnerLoop(spawnCh)
	})
	done := make(chan error, 1)
	spawnCh <- spawnRequest{cmd: cmd, done: done}
	return <-done
}

func spawnerLoop(reqs <-chan spawnRequest) {
	// Never unlocked, and the loop never returns: an exiting locked
	// goroutine takes its thread down, which would fire the children's
	// parent-death signal.
	runtime.LockOSThread()
	for r := range reqs {
		r.done <- r.cmd.Start()
	}
}
