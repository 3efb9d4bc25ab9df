package mesh

import (
	"errors"
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

// A comm parses whatever a cast's bytes hold and works out where it goes
// without panicking, and the hops it picks are always nodes of the cast's
// table other than its own, none marked dead.
func FuzzCastHops(f *testing.F) {
	sender, err := core.ParseActorID("unix:@x,root,client[3]")
	require.NoError(f, err)
	table := []byte("unix:@a,p0\nunix:@b,p1\nunix:@c,p2\nunix:@d,p3\nunix:@e,p4\nunix:@f,p5\n")
	for _, m := range []castMsg{
		{Ranks: []int{0, 1, 2, 3, 4, 5}, Fanout: 2},
		{Ranks: []int{0, castDead, 2, -1, 4, 5}, Node: 0, Fanout: 2},
		{Ranks: []int{castDead, 1, castDead, 3, -1, 5}, Node: 1, Fanout: 3},
		{Ranks: []int{0, 1, 2, 3, 4, 5}, Node: 5, Fanout: 8},
		{Ranks: []int{0, 1, 2, 3, 4, 5}, Node: 2, Fanout: 1 << 62}, // overflows unchecked
	} {
		m.Mesh, m.Procs, m.Extent, m.Sender, m.Type, m.Body = "m", table, "x=6", sender, "t", []byte("body")
		f.Add(appendCast(nil, &m))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var cm castMsg
		var memo *castMemo
		if parseCastMemo(b, &cm, nil, &memo, &castTables{}) != nil {
			return
		}
		lines := memo.table.lines
		self := ""
		if cm.Node >= 0 && cm.Node < len(lines) {
			self = lines[cm.Node]
		}
		hops, err := castHops(nil, &cm, memo.table, self)
		if err != nil {
			return
		}
		for _, c := range hops {
			require.True(t, c >= 0 && c < len(lines), "hop %d of %d nodes", c, len(lines))
			require.NotEqual(t, cm.Node, c)
			require.NotEqual(t, self, lines[c])
			require.NotEqual(t, castDead, cm.Ranks[c])
		}
	})
}

// A comm that memoizes the last cast decodes the next one exactly as
// parseCast does, with the table and headers that cast alone would give,
// whatever the two casts' bytes hold.
func FuzzCastMemo(f *testing.F) {
	sender, err := core.ParseActorID("unix:@x,root,client[3]")
	require.NoError(f, err)
	m := castMsg{Mesh: "m", Procs: []byte("unix:@a,p0\nunix:@b,p1\n"), Ranks: []int{0, 1},
		Extent: "gpus=2", Node: 1, Fanout: 8, Sender: sender, Type: "t", Body: []byte("one")}
	a := appendCast(nil, &m)
	m.Body, m.Ranks = []byte("two"), []int{-1, 0}
	f.Add(a, appendCast(nil, &m))
	m.Procs = []byte("unix:@a,p0\nunix:@c,p2\n")
	f.Add(a, appendCast(nil, &m))
	m.Node, m.Mesh = 0, "n"
	f.Add(a, appendCast(nil, &m))
	installed := []byte("unix:@a,p0\nunix:@d,p3\n")
	m.Procs, m.TableKey = nil, castTableKey(installed)
	f.Add(a, appendCast(nil, &m))
	f.Add(appendCast(nil, &m), appendCast(nil, &m))
	f.Fuzz(func(t *testing.T, first, second []byte) {
		tables := &castTables{}
		require.NoError(t, tables.install(castTableKey(installed), installed))
		var cm castMsg
		var last *castMemo
		if parseCastMemo(first, &cm, nil, &last, tables) != nil {
			return
		}
		var want, got castMsg
		wantErr := parseCast(second, &want)
		var memo *castMemo
		err := parseCastMemo(second, &got, last, &memo, tables)
		if wantErr != nil {
			require.Error(t, err)
			return
		}
		if errors.Is(err, errUnknownCastTable) {
			return // names a table this comm lacks: refused, as it must be
		}
		require.NoError(t, err)
		require.Equal(t, want, got)
		table, err := tables.resolve(&want)
		require.NoError(t, err)
		require.Equal(t, table.lines, memo.table.lines)
		if want.Node >= 0 && want.Node < len(want.Ranks) && want.Ranks[want.Node] >= 0 {
			require.Equal(t, castHeaders(&want), memo.headersFor(&got))
		}
	})
}
