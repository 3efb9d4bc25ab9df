package mesh

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sync"

	"github.com/actormesh/actormesh/alloc"
	"github.com/actormesh/actormesh/core"
)

// Exit codes of BootstrapMain besides the child's own.
const (
	exitFailure       = 1 // the bootstrap failed (parent gone, handshake error)
	exitBadInvocation = 2 // malformed environment, or a mode not implemented
)

// BootstrapMain is the whole per-rank child program: it reads
// HYPERACTOR_MESH_BOOTSTRAP_MODE and runs that mode until it ends, then
// returns the process exit code. It never exits the process itself, so a
// main is just os.Exit(mesh.BootstrapMain()).
func BootstrapMain() int {
	if dir := os.Getenv(EnvCPUProfileDir); dir != "" {
		// Diagnostics: profile every bootstrap process of a mesh.
		if f, err := os.Create(filepath.Join(dir, fmt.Sprintf("cpu-%d.prof", os.Getpid()))); err == nil {
			if pprof.StartCPUProfile(f) == nil {
				defer pprof.StopCPUProfile()
			}
		}
	}
	return bootstrapMain(context.Background(), os.Stderr)
}

// EnvCPUProfileDir, when set, makes every bootstrap process write a CPU
// profile (cpu-PID.prof) into that directory as it exits.
const EnvCPUProfileDir = "ACTORMESH_CPUPROFILE_DIR"

func bootstrapMain(ctx context.Context, stderr io.Writer) int {
	fail := func(code int, err error) int {
		// One line: the allocator keeps the stderr tail for its report.
		fmt.Fprintf(stderr, "bootstrap: %v\n", err)
		return code
	}
	if os.Getenv(alloc.EnvHelloOnly) == "1" {
		code, err := alloc.RunHelloOnlyChild(ctx)
		if err != nil {
			return fail(code, err)
		}
		return code
	}
	mode, err := alloc.BootstrapModeFromEnv()
	if err != nil {
		return fail(exitBadInvocation, err)
	}
	switch {
	case mode.V0ProcMesh != nil:
		// The allocated proc may become a host (AllocateHostMesh's
		// trampoline); a ShutdownHost then ends the run, as RunHost's does.
		shut := make(chan struct{})
		code, err := alloc.RunV0Child(ctx, alloc.ChildConfig{
			StartAgent:  func(p *core.Proc) (core.ActorID, error) { return StartProcAgent(p) },
			ProcOptions: &core.ProcOptions{OnExitRequest: sync.OnceFunc(func() { close(shut) })},
			Exit:        shut,
		})
		if err != nil {
			if code == 0 {
				code = exitFailure
			}
			return fail(code, err)
		}
		return code
	case mode.Proc != nil:
		code, err := RunProcChild(ctx, mode.Proc)
		if err != nil {
			if code == 0 {
				code = exitFailure
			}
			return fail(code, err)
		}
		return code
	case mode.Host != nil:
		code, err := RunHost(ctx, mode.Host)
		if err != nil {
			if code == 0 {
				code = exitFailure
			}
			return fail(code, err)
		}
		return code
	}
	return fail(exitBadInvocation, errors.New("mesh: empty bootstrap mode"))
}
