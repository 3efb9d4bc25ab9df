package testutil

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"time"

	"github.com/actormesh/actormesh/transport"
)

// HelloChildren is the benchmarks' baseline for starting processes: it
// fork/execs n children of bin, each with the environment env(i, addr)
// (the bootstrap binary's hello-only mode), and waits until all of them
// have sent one message to addr. It returns how long that took; the
// children are gone when it returns.
func HelloChildren(bin string, n int, env func(i int, addr transport.Addr) []string) (time.Duration, error) {
	hellos := make(chan struct{}, n)
	start := time.Now()
	srv, err := transport.Serve(transport.Unix.Any(), func([]byte) { hellos <- struct{}{} }, nil)
	if err != nil {
		return 0, err
	}
	defer srv.Close()
	var cmds []*exec.Cmd
	var stdins []io.Closer
	defer func() {
		for _, s := range stdins {
			s.Close() // the hello-only child exits when its stdin closes
		}
		for _, c := range cmds {
			c.Wait()
		}
	}()
	for i := range n {
		c := exec.Command(bin)
		c.Env = append(os.Environ(), env(i, srv.Addr())...)
		c.Stderr = os.Stderr
		stdin, err := c.StdinPipe()
		if err != nil {
			return 0, err
		}
		if err := c.Start(); err != nil {
			return 0, err
		}
		cmds = append(cmds, c)
		stdins = append(stdins, stdin)
	}
	timeout := time.NewTimer(60 * time.Second)
	defer timeout.Stop()
	for range n {
		select {
		case <-hellos:
		case <-timeout.C:
			return 0, errors.New("testutil: children did not say hello within 60s")
		}
	}
	return time.Since(start), nil
}
