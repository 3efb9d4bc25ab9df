package mesh

import (
	"testing"

	"github.com/actormesh/actormesh/core"
	"github.com/stretchr/testify/require"
)

func TestCastWire(t *testing.T) {
	sender, err := core.ParseActorID("unix:@x,root,client[3]")
	require.NoError(t, err)
	m := castMsg{Mesh: "m", Procs: []byte("unix:@a,p0\nunix:@b,p1\n"), Ranks: []int{0, -1, 200, 70000, -40000},
		Extent: "gpus=2", Node: 1, Fanout: 8, Sender: sender, Type: "t", Body: make([]byte, 300)}
	name, body, err := core.EncodeMessage(m)
	require.NoError(t, err)
	require.Equal(t, castTypeName, name)
	v, err := core.DecodeMessage(name, body)
	require.NoError(t, err)
	got := v.(castMsg)
	require.Equal(t, sender, got.senderID())
	got.senderText = ""
	require.Equal(t, m, got)

	setCastNode(body, 7)
	require.NoError(t, parseCast(body, &got))
	require.Equal(t, 7, got.Node)
	// Truncations and garbage fail without panicking.
	for i := range body {
		require.Error(t, parseCast(body[:i], &got))
		g := append([]byte(nil), body...)
		g[i] ^= 0xff
		_ = parseCast(g, &got)
	}
}

func TestProcLine(t *testing.T) {
	table := []byte("a\nbb\nccc\n")
	require.Equal(t, "a", string(procLine(table, 0)))
	require.Equal(t, "ccc", string(procLine(table, 2)))
	require.Nil(t, procLine(table, 4))
}

// A hop that memoizes casts must decode each exactly as parseCast does,
// reuse what did not change, and notice whatever did.
func TestCastMemo(t *testing.T) {
	sender, err := core.ParseActorID("unix:@x,root,client[3]")
	require.NoError(t, err)
	m := castMsg{Mesh: "m", Procs: []byte("unix:@a,p0\nunix:@b,p1\n"), Ranks: []int{0, 1},
		Extent: "gpus=2", Node: 1, Fanout: 8, Sender: sender, Type: "t", Body: []byte("one")}
	encode := func(m castMsg) []byte { return appendCast(nil, &m) }
	parse := func(b []byte, last *castMemo) (castMsg, *castMemo) {
		var want, got castMsg
		var memo *castMemo
		require.NoError(t, parseCast(b, &want))
		require.NoError(t, parseCastMemo(b, &got, last, &memo))
		require.Equal(t, want, got)
		return got, memo
	}

	_, first := parse(encode(m), nil)
	require.Equal(t, []string{"unix:@a,p0", "unix:@b,p1"}, first.lines)
	require.Equal(t, "p1", first.procs[1].Name)

	m.Body = []byte("two") // only the body changed: the same memo
	_, again := parse(encode(m), first)
	require.Same(t, first, again)

	m.Ranks = []int{-1, 0} // another view: a new memo, the same parsed table
	got, view := parse(encode(m), first)
	require.NotSame(t, first, view)
	require.Equal(t, []int{-1, 0}, view.ranks)
	require.Equal(t, first.procs, view.procs)
	require.Equal(t, "0", view.headersFor(&got)[headerRank])

	m.Procs = []byte("unix:@a,p0\nunix:@c,p2\n") // another mesh's procs
	_, table := parse(encode(m), view)
	require.Equal(t, "p2", table.procs[1].Name)

	m.Procs = []byte("unix:@a,p0\nnot an id\n")
	_, bad := parse(encode(m), table)
	require.Error(t, bad.procErrs[1])

	// Truncations and garbage fail as parseCast does, memo or not.
	b := encode(m)
	for i := range b {
		var got castMsg
		var memo *castMemo
		require.Error(t, parseCastMemo(b[:i], &got, first, &memo))
		g := append([]byte(nil), b...)
		g[i] ^= 0xff
		var want castMsg
		require.Equal(t, parseCast(g, &want) == nil, parseCastMemo(g, &got, first, &memo) == nil)
	}
}
