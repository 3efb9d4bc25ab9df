package mesh

import (
	"fmt"
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

func TestParseCastTable(t *testing.T) {
	table := parseCastTable("unix:@a,p0\nnot an id\nunix:@c,p2\n")
	require.Equal(t, []string{"unix:@a,p0", "not an id", "unix:@c,p2"}, table.lines)
	require.Equal(t, "p2", table.procs[2].Name)
	require.NoError(t, table.procErrs[0])
	require.Error(t, table.procErrs[1])
	require.Empty(t, parseCastTable("").lines)
}

// A hop that memoizes casts must decode each exactly as parseCast does,
// reuse what did not change, and notice whatever did.
func TestCastMemo(t *testing.T) {
	sender, err := core.ParseActorID("unix:@x,root,client[3]")
	require.NoError(t, err)
	m := castMsg{Mesh: "m", Procs: []byte("unix:@a,p0\nunix:@b,p1\n"), Ranks: []int{0, 1},
		Extent: "gpus=2", Node: 1, Fanout: 8, Sender: sender, Type: "t", Body: []byte("one")}
	tables := &castTables{}
	encode := func(m castMsg) []byte { return appendCast(nil, &m) }
	parse := func(b []byte, last *castMemo) (castMsg, *castMemo) {
		var want, got castMsg
		var memo *castMemo
		require.NoError(t, parseCast(b, &want))
		require.NoError(t, parseCastMemo(b, &got, last, &memo, tables))
		require.Equal(t, want, got)
		return got, memo
	}

	_, first := parse(encode(m), nil)
	require.Equal(t, []string{"unix:@a,p0", "unix:@b,p1"}, first.table.lines)
	require.Equal(t, "p1", first.table.procs[1].Name)

	m.Body = []byte("two") // only the body changed: the same memo
	_, again := parse(encode(m), first)
	require.Same(t, first, again)

	m.Ranks = []int{-1, 0} // another view: a new memo, the same parsed table
	got, view := parse(encode(m), first)
	require.NotSame(t, first, view)
	require.Equal(t, []int{-1, 0}, view.ranks)
	require.Same(t, first.table, view.table)
	require.Equal(t, "0", view.headersFor(&got)[headerRank])

	m.Procs = []byte("unix:@a,p0\nunix:@c,p2\n") // another mesh's procs
	_, other := parse(encode(m), view)
	require.Equal(t, "p2", other.table.procs[1].Name)

	// The same procs by the key of an installed table.
	key := castTableKey(m.Procs)
	require.NoError(t, tables.install(key, m.Procs))
	m.Procs, m.TableKey = nil, key
	_, keyed := parse(encode(m), other)
	require.Equal(t, other.table.lines, keyed.table.lines)
	_, keyedAgain := parse(encode(m), keyed)
	require.Same(t, keyed, keyedAgain)

	// A key nobody installed fails the hop; the cast itself decodes.
	m.TableKey = castTableKey([]byte("unix:@z,p9\n"))
	var got2 castMsg
	var memo *castMemo
	require.ErrorIs(t, parseCastMemo(encode(m), &got2, keyed, &memo, tables), errUnknownCastTable)
	require.NoError(t, parseCast(encode(m), &got2))

	// Truncations and garbage fail as parseCast does, memo or not.
	m.TableKey = key
	b := encode(m)
	for i := range b {
		var got castMsg
		var memo *castMemo
		require.Error(t, parseCastMemo(b[:i], &got, first, &memo, tables))
		g := append([]byte(nil), b...)
		g[i] ^= 0xff
		var want castMsg
		if parseCast(g, &want) != nil {
			require.Error(t, parseCastMemo(g, &got, first, &memo, tables))
		}
	}
}

// A comm keeps a table only under its own digest, and only so many.
func TestCastTablesInstall(t *testing.T) {
	var ts castTables
	raw := []byte("unix:@a,p0\n")
	require.Error(t, ts.install(castTableKey([]byte("other")), raw))
	require.Nil(t, ts.get(castTableKey(raw)))
	require.NoError(t, ts.install(castTableKey(raw), raw))
	require.NoError(t, ts.install(castTableKey(raw), raw), "installing twice")
	require.Equal(t, []string{"unix:@a,p0"}, ts.get(castTableKey(raw)).lines)
	for i := range maxCastTables - 1 {
		r := []byte(fmt.Sprintf("unix:@a,p%d\n", i+1))
		require.NoError(t, ts.install(castTableKey(r), r))
	}
	full := []byte("unix:@full,p\n")
	require.Error(t, ts.install(castTableKey(full), full))
}
