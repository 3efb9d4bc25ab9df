package mesh

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// forwarders simulates a cast over ranks: for every node reached, the node
// that forwarded to it (castRoot: the caster), as castEncoded and relayCast
// route it.
func forwarders(t *testing.T, ranks []int, fanout int) map[int]int {
	from := map[int]int{}
	var walk func(node int)
	visit := func(node, parent int) {
		_, twice := from[node]
		require.False(t, twice, "node %d reached twice", node)
		require.NotEqual(t, castDead, ranks[node], "a dead node was sent the cast")
		from[node] = parent
		walk(node)
	}
	walk = func(node int) {
		for _, c := range castTargets(nil, ranks, fanout, node) {
			visit(c, node)
		}
	}
	for _, c := range castTargets(nil, ranks, fanout, castRoot) {
		visit(c, castRoot)
	}
	return from
}

// A proc's death changes the path of no node outside its subtree, so a
// cast sent after a death cannot overtake an earlier one; every selected
// live node is still reached, once.
func TestCastTreeStableAcrossDeaths(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, fanout := range []int{2, 3, 8} {
		for range 200 {
			n := 1 + rng.IntN(80)
			all := make([]int, n)
			for i := range all {
				all[i] = i
				if rng.IntN(4) == 0 {
					all[i] = -1 // not in the view
				}
			}
			before := forwarders(t, all, fanout)

			after := make([]int, n)
			copy(after, all)
			dead := map[int]bool{}
			for i := range after {
				if rng.IntN(6) == 0 {
					after[i] = castDead
					dead[i] = true
				}
			}
			got := forwarders(t, after, fanout)
			for node, rank := range after {
				_, reached := got[node]
				if rank >= 0 {
					require.True(t, reached, "fanout %d: live selected node %d not reached (dead %v)", fanout, node, dead)
				}
				if !reached {
					continue
				}
				deadAncestor := false
				for a, r := node, castRoots(n, fanout); a >= r; { // up to a root
					a = (a - r) / fanout
					deadAncestor = deadAncestor || dead[a]
				}
				if !deadAncestor {
					require.Equal(t, before[node], got[node], "fanout %d: node %d changed forwarder (dead %v)", fanout, node, dead)
				}
			}
		}
	}
}

// The caster sends a cast to at most fan-out procs, and to fewer procs
// than the mesh has unless it has one: a tree, not one message per actor.
// Up to fan-out+1 procs it sends to one, which forwards to the rest.
func TestCastRoots(t *testing.T) {
	for _, fanout := range []int{2, 3, 8} {
		for n := 1; n <= 200; n++ {
			ranks := make([]int, n)
			for i := range ranks {
				ranks[i] = i
			}
			roots := castTargets(nil, ranks, fanout, castRoot)
			require.LessOrEqual(t, len(roots), fanout, "fanout %d, %d procs", fanout, n)
			if n > 1 {
				require.Less(t, len(roots), n, "fanout %d, %d procs", fanout, n)
			}
			if n <= fanout+1 {
				require.Equal(t, []int{0}, roots, "fanout %d, %d procs", fanout, n)
			}
			require.Len(t, forwarders(t, ranks, fanout), n, "every proc reached once")
		}
	}
}
