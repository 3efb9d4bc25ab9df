package tests

// Tests of the C ABI (libmesh.so, include/mesh.h): the C programs in
// tests/c, run as child processes, and the header/library symbol check.
// The purego test (capi_purego_test.go) drives the library from Go.

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/actormesh/actormesh/alloc"
	"github.com/actormesh/actormesh/core"
	"github.com/actormesh/actormesh/internal/testutil"
	"github.com/actormesh/actormesh/mesh"
	"github.com/actormesh/actormesh/mesh/testactor"
	"github.com/actormesh/actormesh/transport"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"
)

// capiBuild is libmesh.so and the C test programs, built once per test
// binary into a temporary directory.
var capiBuild struct {
	once sync.Once
	dir  string
	lib  string
	err  error
}

// repoRoot is the module root (tests/ is one level down).
func repoRoot(t testing.TB) string {
	wd, err := os.Getwd()
	require.NoError(t, err)
	return filepath.Dir(wd)
}

func goTool() string {
	if gobin, err := exec.LookPath("go"); err == nil {
		return gobin
	}
	return "go"
}

// buildLib builds libmesh.so (without the race detector: its runtime
// cannot be loaded as a shared library) and returns its directory.
func buildLib(t testing.TB) string {
	t.Helper()
	if raceEnabled {
		t.Skip("the C ABI tests run in the non-race pass: ThreadSanitizer cannot be loaded as part of a shared library (it cannot map its shadow memory), so libmesh.so is never built with -race")
	}
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip("gcc is not installed")
	}
	root := repoRoot(t)
	capiBuild.once.Do(func() {
		// TestMain's directory (beside the bootstrap binary) is removed
		// when the test binary ends.
		dir := filepath.Join(filepath.Dir(bootstrapBin), "capi")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			capiBuild.err = err
			return
		}
		capiBuild.dir = dir
		capiBuild.lib = filepath.Join(dir, "libmesh.so")
		cmd := exec.Command(goTool(), "build", "-buildmode=c-shared", "-o", capiBuild.lib, "./capi")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			capiBuild.err = fmt.Errorf("building libmesh.so: %v\n%s", err, out)
		}
	})
	if capiBuild.err != nil {
		t.Fatal(capiBuild.err)
	}
	return capiBuild.dir
}

// buildC compiles tests/c/NAME.c against include/mesh.h and libmesh.so
// with the flags the project promises to support.
func buildC(t testing.TB, name string) string {
	t.Helper()
	dir := buildLib(t)
	root := repoRoot(t)
	out := filepath.Join(dir, name)
	cmd := exec.Command("gcc", "-std=c11", "-Wall", "-Wextra", "-Werror", "-O2",
		"-I", filepath.Join(root, "include"), "-o", out, filepath.Join(root, "tests", "c", name+".c"),
		"-L", dir, "-lmesh", "-Wl,-rpath,"+dir)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("compiling %s.c: %v\n%s", name, err, b)
	}
	return out
}

// runC runs a C test program and fails with its output unless it exits 0.
func runC(t *testing.T, prog string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, prog, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		t.Fatalf("%s: %v\n%s", filepath.Base(prog), err, out.String())
	}
	return out.String()
}

func TestCapiCanonicalC(t *testing.T) {
	prog := buildC(t, "canonical")
	out := runC(t, prog, bootstrapBin)
	assert.Contains(t, out, "canonical: PASS")
	assert.Empty(t, testutil.WaitNoDescendants(10*time.Second), "processes left behind")
}

func TestCapiForeignActorC(t *testing.T) {
	prog := buildC(t, "foreign_actor")
	out := runC(t, prog)
	assert.Contains(t, out, "foreign_actor: PASS")
	assert.Empty(t, testutil.WaitNoDescendants(10*time.Second), "processes left behind")
}

func TestCapiBadInputC(t *testing.T) {
	prog := buildC(t, "bad_input")
	out := runC(t, prog, bootstrapBin)
	assert.Contains(t, out, "bad_input: PASS")
	assert.Empty(t, testutil.WaitNoDescendants(10*time.Second), "processes left behind")
}

func TestCapiPortsC(t *testing.T) {
	prog := buildC(t, "ports")
	out := runC(t, prog)
	assert.Contains(t, out, "ports: PASS")
}

// TestCapiMemGrowthC checks that create/free cycles do not grow the
// process (the Go heap and runtime resources, which Valgrind cannot see).
func TestCapiMemGrowthC(t *testing.T) {
	prog := buildC(t, "memgrowth")
	out := runC(t, prog, "5")
	t.Log(out)
	assert.Contains(t, out, "memgrowth: PASS")
}

// TestCapiForeignActorFromGo spawns the C actor type from a Go client: a
// Go program using the SDK drives hosts whose bootstrap binary is the C
// program, and calls the C actors with mesh.MethodCall.
func TestCapiForeignActorFromGo(t *testing.T) {
	prog := buildC(t, "foreign_actor")
	t.Setenv("HYPERACTOR_MESH_BOOTSTRAP_ENABLE_PDEATHSIG", "false")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	proc, err := core.DirectProc(transport.Unix.Any(), "root", nil)
	require.NoError(t, err)
	defer proc.Shutdown(context.Background())
	inst, _, err := proc.Instance("client")
	require.NoError(t, err)
	a, err := alloc.NewProcessAllocator(alloc.Command{Path: prog}).Allocate(ctx, alloc.Spec{Extent: alloc.MustExtent("hosts", 2)})
	require.NoError(t, err)
	hm, err := mesh.AllocateHostMesh(ctx, inst, a, "hosts", nil)
	require.NoError(t, err)
	defer func() {
		assert.NoError(t, hm.Shutdown(ctx, inst))
		assert.Empty(t, testutil.WaitNoDescendants(10*time.Second), "processes left behind")
	}()
	pm, err := hm.Spawn(ctx, inst, "procs", alloc.MustExtent("gpus", 2))
	require.NoError(t, err)
	core.RegisterActor("demo.Adder", func(struct{}) (*goSideAdder, error) { return nil, fmt.Errorf("only in C") })
	am, err := mesh.Spawn[*goSideAdder](ctx, inst, pm, "adders", 40)
	require.NoError(t, err)
	vm, err := mesh.Call(ctx, inst, am, func(r core.PortRef[mesh.MethodReply]) any {
		return mesh.MethodCall{Method: "Add", Payload: []byte{0x02}, Reply: r}
	})
	require.NoError(t, err)
	require.NoError(t, vm.Err())
	for rank, v := range vm.Values {
		require.Empty(t, v.Err)
		var got int64
		require.NoError(t, msgpack.Unmarshal(v.Payload, &got))
		assert.Equal(t, int64(40+2+1000*rank), got, "rank %d", rank)
	}
}

// goSideAdder names the C type for mesh.Spawn; it never runs in Go.
type goSideAdder struct{}

func (*goSideAdder) Handle(*core.Context, any) error { return fmt.Errorf("goSideAdder is a name only") }

// TestCapiSymbols checks that libmesh.so exports exactly the functions
// include/mesh.h declares, and that the header's version matches.
func TestCapiSymbols(t *testing.T) {
	dir := buildLib(t)
	if _, err := exec.LookPath("nm"); err != nil {
		t.Skip("nm is not installed")
	}
	header, err := os.ReadFile(filepath.Join(repoRoot(t), "include", "mesh.h"))
	require.NoError(t, err)
	declared := map[string]bool{}
	decl := regexp.MustCompile(`(?m)^[a-z_][a-z0-9_ \t*]*\b(mesh_[a-z0-9_]+)\(`)
	for _, m := range decl.FindAllStringSubmatch(string(header), -1) {
		declared[m[1]] = true
	}
	require.NotEmpty(t, declared)
	out, err := exec.Command("nm", "-D", "--defined-only", filepath.Join(dir, "libmesh.so")).Output()
	require.NoError(t, err)
	exported := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 3 && strings.HasPrefix(f[2], "mesh_") {
			exported[f[2]] = true
		}
	}
	var missing, extra []string
	for name := range declared {
		if !exported[name] {
			missing = append(missing, name)
		}
	}
	for name := range exported {
		if !declared[name] {
			extra = append(extra, name)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	assert.Empty(t, missing, "declared in mesh.h but not exported")
	assert.Empty(t, extra, "exported but not declared in mesh.h")
	t.Logf("%d functions declared and exported", len(declared))

	m := regexp.MustCompile(`#define MESH_ABI_VERSION (\d+)`).FindSubmatch(header)
	require.NotNil(t, m)
	v, _ := strconv.Atoi(string(m[1]))
	assert.Equal(t, 1, v, "MESH_ABI_VERSION; mesh_abi_version() is checked against it by the C and purego tests")
}

// BenchmarkCapiRoundTrip measures a round trip client → TestActor (in
// its own proc: one host, one proc) → reply port, through the C ABI (the
// C program bench.c, a child process) and through the Go SDK (here), in
// alternating blocks so that both see the same machine load, and reports
// both and their ratio (target: C ≤ 1.2 × Go).
func BenchmarkCapiRoundTrip(b *testing.B) {
	const block = 500
	prog := buildC(b, "bench")
	cmd := exec.Command(prog, bootstrapBin, "500")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		stdin.Close()
		if err := cmd.Wait(); err != nil {
			b.Errorf("bench: %v", err)
		}
	}()
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() || lines.Text() != "ready" {
		b.Fatalf("bench did not start: %q", lines.Text())
	}
	cBlock := func(mode string) time.Duration {
		fmt.Fprintf(stdin, "%s %d\n", mode, block)
		var ns float64
		if !lines.Scan() {
			b.Fatal("bench ended early")
		}
		if _, err := fmt.Sscanf(lines.Text(), "ns %f", &ns); err != nil {
			b.Fatalf("bench output %q: %v", lines.Text(), err)
		}
		return time.Duration(ns)
	}
	goBlock := goRoundTrips(b, block)
	goBlock() // warm up
	blocks := max(b.N/block, 4)
	var cTimes, pollTimes, goTimes []time.Duration
	b.ResetTimer()
	for range blocks {
		cTimes = append(cTimes, cBlock("run")/block)
		goTimes = append(goTimes, goBlock()/block)
		pollTimes = append(pollTimes, cBlock("poll")/block)
	}
	b.StopTimer()
	cMed, pollMed, goMed := median(cTimes), median(pollTimes), median(goTimes)
	b.ReportMetric(float64(cMed), "c-ns/rt")
	b.ReportMetric(float64(pollMed), "cpoll-ns/rt")
	b.ReportMetric(float64(goMed), "go-ns/rt")
	b.ReportMetric(float64(cMed)/float64(goMed), "c/go")
	b.ReportMetric(float64(pollMed)/float64(goMed), "cpoll/go")
	fmt.Printf("round trip, median of %d alternating blocks of %d: C ABI %.1f µs (mesh_port_recv), %.1f µs (poller fd), Go SDK %.1f µs: ratio %.2f (poller %.2f)\n",
		blocks, block, float64(cMed)/1e3, float64(pollMed)/1e3, float64(goMed)/1e3, float64(cMed)/float64(goMed), float64(pollMed)/float64(goMed))
}

func median[T cmp.Ordered](xs []T) T {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// goRoundTrips sets up bench.c's flow through the Go SDK and returns a
// function that times n round trips.
func goRoundTrips(b *testing.B, n int) func() time.Duration {
	b.Setenv("HYPERACTOR_MESH_BOOTSTRAP_ENABLE_PDEATHSIG", "false")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	b.Cleanup(cancel)
	proc, err := core.DirectProc(transport.Unix.Any(), "root", nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { proc.Shutdown(ctx) })
	inst, _, _ := proc.Instance("client")
	a, err := alloc.NewProcessAllocator(alloc.Command{Path: bootstrapBin}).Allocate(ctx, alloc.Spec{Extent: alloc.MustExtent("replicas", 1)})
	if err != nil {
		b.Fatal(err)
	}
	hm, err := mesh.AllocateHostMesh(ctx, inst, a, "bench", nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { hm.Shutdown(ctx, inst) })
	pm, err := hm.Spawn(ctx, inst, "p0", alloc.Unity())
	if err != nil {
		b.Fatal(err)
	}
	am, err := mesh.Spawn[*testactor.TestActor](ctx, inst, pm, "a0", struct{}{})
	if err != nil {
		b.Fatal(err)
	}
	one := am.Values()[0]
	port, rx := core.OpenPort[[]byte](inst)
	data := bytes.Repeat([]byte{'x'}, 64)
	return func() time.Duration {
		t0 := time.Now()
		for range n {
			if err := one.Send(inst, testactor.Echo{Data: data, Reply: port.Bind()}); err != nil {
				b.Fatal(err)
			}
			if _, err := rx.Recv(ctx); err != nil {
				b.Fatal(err)
			}
		}
		return time.Since(t0)
	}
}
