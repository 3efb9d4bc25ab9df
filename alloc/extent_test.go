package alloc

import (
	"encoding/json"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"
)

func TestExtentRanks(t *testing.T) {
	e := MustExtent("a", 2, "b", 3)
	assert.Equal(t, 6, e.NumRanks())
	assert.Equal(t, "{a: 2, b: 3}", e.String())
	assert.Equal(t, []string{"a", "b"}, e.Labels())
	assert.Equal(t, []int{2, 3}, e.Sizes())
	for r := range e.NumRanks() {
		p, err := e.PointOfRank(r)
		require.NoError(t, err)
		assert.Equal(t, []int{r / 3, r % 3}, p.Coords(), "row-major: the last dimension varies fastest")
		back, err := e.RankOf(p)
		require.NoError(t, err)
		assert.Equal(t, r, back)
		assert.Equal(t, r, p.Rank())
	}
	p, _ := e.PointOfRank(3)
	assert.Equal(t, "a=1/2,b=0/3", p.String())
	b, ok := p.Coord("b")
	assert.True(t, ok)
	assert.Equal(t, 0, b)
	_, err := e.PointOfRank(6)
	assert.Error(t, err)
	_, err = e.RankOfCoords(0, 3)
	assert.Error(t, err)
	_, err = MustExtent("x", 6).RankOf(p)
	assert.Error(t, err, "a point of another extent")
}

func TestUnity(t *testing.T) {
	u := Unity()
	assert.Equal(t, 1, u.NumRanks())
	assert.Equal(t, 0, u.NumDims())
	assert.Equal(t, "{}", u.String())
	p, err := u.PointOfRank(0)
	require.NoError(t, err)
	assert.Equal(t, "", p.String())
	assert.Equal(t, 0, p.Rank())
	assert.True(t, Extent{}.Equal(u))
}

func TestParseExtent(t *testing.T) {
	for in, want := range map[string]string{
		"{replicas: 4}":           "{replicas: 4}",
		"{hosts: 2, gpus: 8}":     "{hosts: 2, gpus: 8}",
		"hosts=2,gpus=8":          "{hosts: 2, gpus: 8}",
		" { hosts:2 ,gpus : 8 } ": "{hosts: 2, gpus: 8}",
		"{}":                      "{}",
		"":                        "{}",
	} {
		e, err := ParseExtent(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, e.String(), in)
		again, err := ParseExtent(e.String())
		require.NoError(t, err)
		assert.True(t, e.Equal(again))
	}
	for _, bad := range []string{"{a: 2", "a", "a=x", "a=0", "a=-1", "a=2,a=3", "1a=2", "{a: 2,}", "a=99999,b=99999"} {
		_, err := ParseExtent(bad)
		assert.Error(t, err, bad)
		if err != nil {
			assert.True(t, strings.HasPrefix(err.Error(), "alloc: "), err.Error())
		}
	}
}

func TestExtentConcat(t *testing.T) {
	e, err := MustExtent("hosts", 2).Concat(MustExtent("gpus", 4))
	require.NoError(t, err)
	assert.Equal(t, "{hosts: 2, gpus: 4}", e.String())
	_, err = e.Concat(MustExtent("gpus", 2))
	assert.ErrorContains(t, err, "duplicate")
	u, err := Unity().Concat(e)
	require.NoError(t, err)
	assert.True(t, u.Equal(e))
}

func TestExtentEncodings(t *testing.T) {
	type wrapper struct{ E Extent }
	in := wrapper{MustExtent("hosts", 2, "gpus", 8)}
	b, err := msgpack.Marshal(in)
	require.NoError(t, err)
	var out wrapper
	require.NoError(t, msgpack.Unmarshal(b, &out))
	assert.True(t, in.E.Equal(out.E))
	j, err := json.Marshal(in)
	require.NoError(t, err)
	assert.JSONEq(t, `{"E":"{hosts: 2, gpus: 8}"}`, string(j))
}

func TestBootstrapModeEncoding(t *testing.T) {
	m := BootstrapMode{V0ProcMesh: &V0ProcMeshMode{Config: map[string]string{"HYPERACTOR_X": "1"}}}
	s, err := m.Encode()
	require.NoError(t, err)
	back, err := DecodeBootstrapMode(s)
	require.NoError(t, err)
	assert.Equal(t, m, back)
	raw, err := json.Marshal(m)
	require.NoError(t, err)
	assert.JSONEq(t, `{"V0ProcMesh":{"config":{"HYPERACTOR_X":"1"}}}`, string(raw))

	host := BootstrapMode{Host: &HostMode{Command: &BootstrapCommand{Program: "/bin/x", Args: []string{"a"}}, ExitOnShutdown: true}}
	host.Host.Addr.UnmarshalText([]byte("unix:@h"))
	s, err = host.Encode()
	require.NoError(t, err)
	back, err = DecodeBootstrapMode(s)
	require.NoError(t, err)
	assert.Equal(t, "Host", back.Name())
	assert.Equal(t, host, back)

	for _, bad := range []string{"%%%", "bm90IGpzb24=" /* not json */, "e30=" /* {} */, "eyJBIjp7fSwiQiI6e319" /* {"A":{},"B":{}} */} {
		_, err := DecodeBootstrapMode(bad)
		assert.Error(t, err, bad)
	}
	_, err = BootstrapMode{}.Encode()
	assert.Error(t, err)
}

func TestOutputTail(t *testing.T) {
	var mu sync.Mutex
	var sb strings.Builder
	w := NewOutputTail("[rank 1] ", writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return sb.Write(p)
	}), 2)
	w.Write([]byte("one\ntw"))
	w.Write([]byte("o\nthree\nfour"))
	w.Flush()
	assert.Equal(t, "[rank 1] one\n[rank 1] two\n[rank 1] three\n[rank 1] four\n", sb.String())
	assert.Equal(t, []string{"three", "four"}, w.Lines())
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func TestStopReasonString(t *testing.T) {
	assert.Equal(t, "exited cleanly", StopReason{Kind: StopClean}.String())
	assert.Equal(t, "exited with code 3; stderr tail:\nboom", StopReason{Kind: StopExited, Code: 3, Tail: []string{"boom"}}.String())
	assert.Equal(t, "killed by signal 9 (killed)", StopReason{Kind: StopKilled, Signal: 9}.String())
	assert.Contains(t, StopReason{Kind: StopWatchdog, Watchdog: "hello timeout", Signal: 15}.String(), "hello timeout")
}

func TestShortID(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := shortID()
		assert.False(t, seen[id])
		seen[id] = true
		assert.True(t, validLabel(id), id)
	}
}
