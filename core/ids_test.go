package core

import (
	"strings"
	"testing"

	"github.com/actormesh/actormesh/transport"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"
)

func TestIDTextForms(t *testing.T) {
	proc := ProcID{Addr: transport.MustParseAddr("unix:@k3x"), Name: "root"}
	actor := proc.ActorID("client", 0)
	port := actor.Port(1024)
	assert.Equal(t, "unix:@k3x,root", proc.String())
	assert.Equal(t, "unix:@k3x,root,client[0]", actor.String())
	assert.Equal(t, "unix:@k3x,root,client[0][1024]", port.String())

	for _, tc := range []struct{ text string }{
		{"unix:@k3x,root"}, {"tcp:[::1]:1234,test"}, {"tcp:127.0.0.1:80,p-1.x"}, {"local:7,_p"},
		{"unix:/tmp/a.sock,p"},
	} {
		p, err := ParseProcID(tc.text)
		require.NoError(t, err, tc.text)
		assert.Equal(t, tc.text, p.String())
	}
	a, err := ParseActorID("tcp:[::1]:1234,test,testactor[123]")
	require.NoError(t, err)
	assert.Equal(t, uint64(123), a.PID)
	assert.Equal(t, "testactor", a.Name)
	a, err = ParseActorID("unix:@x,p,bare")
	require.NoError(t, err)
	assert.Equal(t, "unix:@x,p,bare[0]", a.String())
	pt, err := ParsePortID("unix:@k3x,root,client[0][1024]")
	require.NoError(t, err)
	assert.Equal(t, port, pt)
}

func TestIDParseErrors(t *testing.T) {
	for _, tc := range []struct {
		parse func(string) error
		text  string
		want  string
	}{
		{procParse, "test", `"test"`},
		{procParse, "xxx:foo,p", "unknown transport"},
		{procParse, "unix:@a,", "invalid proc name"},
		{procParse, "unix:@a,1abc", "invalid proc name"},
		{procParse, "unix:@a,p,q", "trailing"},
		{actorParse, "unix:@a,p", "no actor name"},
		{actorParse, "unix:@a,p,a[", "unclosed"},
		{actorParse, "unix:@a,p,a[x]", "not a number"},
		{actorParse, "unix:@a,p,a[01]", "not a number"},
		{actorParse, "unix:@a,p,a[1][2]", "names a port"},
		{actorParse, "unix:@a,p,(blah)", "invalid actor name"},
		{portParse, "unix:@a,p,a[1]", "want NAME[PID][PORT]"},
		{portParse, "unix:@a,p,a[1][2][3]", "too many"},
		{portParse, "unix:@a,p,a[1]x[2]", "unexpected"},
	} {
		err := tc.parse(tc.text)
		if assert.Error(t, err, tc.text) {
			assert.Contains(t, err.Error(), tc.want, tc.text)
			assert.Contains(t, err.Error(), tc.text, "error should quote the input")
		}
	}
}

func procParse(s string) error  { _, err := ParseProcID(s); return err }
func actorParse(s string) error { _, err := ParseActorID(s); return err }
func portParse(s string) error  { _, err := ParsePortID(s); return err }

func TestIDMsgpackRoundTrip(t *testing.T) {
	port, err := ParsePortID("tcp:[::1]:9,p,a[3][1025]")
	require.NoError(t, err)
	type carrier struct {
		Port  PortID
		Actor ActorID
		Proc  ProcID
		Ref   PortRef[int]
	}
	in := carrier{Port: port, Actor: port.Actor, Proc: port.Actor.Proc, Ref: PortRef[int]{ID: port}}
	b, err := msgpack.Marshal(in)
	require.NoError(t, err)
	var out carrier
	require.NoError(t, msgpack.Unmarshal(b, &out))
	assert.Equal(t, in, out)

	// Unset ids, such as an optional PortRef left empty, survive too.
	b, err = msgpack.Marshal(carrier{})
	require.NoError(t, err)
	out = carrier{Port: port}
	require.NoError(t, msgpack.Unmarshal(b, &out))
	assert.Equal(t, carrier{}, out)
}

func FuzzParseProcID(f *testing.F) {
	for _, s := range []string{"unix:@k3x,root", "tcp:[::1]:1,p", "local:1,a", "unix:/a,b", ",", "unix:@,"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseProcID(s)
		if err != nil {
			return
		}
		again, err := ParseProcID(p.String())
		if err != nil || again != p {
			t.Fatalf("%q → %q → %v, %v", s, p.String(), again, err)
		}
	})
}

func FuzzParseActorID(f *testing.F) {
	for _, s := range []string{"unix:@k3x,root,client[0]", "tcp:[::1]:1,p,a", "local:1,a,b[18446744073709551615]", "unix:@a,p,a[["} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseActorID(s)
		if err != nil {
			return
		}
		again, err := ParseActorID(a.String())
		if err != nil || again != a {
			t.Fatalf("%q → %q → %v, %v", s, a.String(), again, err)
		}
	})
}

func FuzzParsePortID(f *testing.F) {
	for _, s := range []string{"unix:@k3x,root,client[0][1024]", "tcp:127.0.0.1:1,p,a[1][2]", "unix:@a,p,a[1][]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePortID(s)
		if err != nil {
			return
		}
		if !strings.HasSuffix(p.String(), "]") {
			t.Fatalf("bad text form %q", p.String())
		}
		again, err := ParsePortID(p.String())
		if err != nil || again != p {
			t.Fatalf("%q → %q → %v, %v", s, p.String(), again, err)
		}
	})
}
