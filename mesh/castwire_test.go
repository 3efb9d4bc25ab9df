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
