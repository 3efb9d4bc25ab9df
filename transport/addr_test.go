package transport

import (
	"strings"
	"testing"
)

func TestParseAddr(t *testing.T) {
	tests := []struct {
		in      string
		want    Addr
		wantErr string // substring; the input must be quoted in every error
	}{
		{in: "local:3", want: Addr{Local, "3"}},
		{in: "local:0", want: Addr{Local, "0"}},
		{in: "unix:@abc", want: Addr{Unix, "@abc"}},
		{in: "unix:/run/x.sock", want: Addr{Unix, "/run/x.sock"}},
		{in: "tcp:127.0.0.1:4000", want: Addr{TCP, "127.0.0.1:4000"}},
		{in: "tcp:[::1]:4000", want: Addr{TCP, "[::1]:4000"}},
		{in: "tcp:[::ffff:10.0.0.1]:1", want: Addr{TCP, "10.0.0.1:1"}},
		{in: "tcp:example.com:80", want: Addr{TCP, "example.com:80"}},
		{in: "127.0.0.1", wantErr: "no transport specified"},
		{in: "xxx:foo", wantErr: `unknown transport "xxx"`},
		{in: "local:abc", wantErr: "decimal number"},
		{in: "local:01", wantErr: "decimal number"},
		{in: "unix:", want: Unix.Any()},
		{in: "tcp:", want: TCP.Any()},
		{in: "unix:@", wantErr: "empty unix socket name"},
		{in: "unix:/a,b", wantErr: "comma"},
		{in: "unix:" + strings.Repeat("a", 108), wantErr: "longer than 107"},
		{in: "tcp:1.2.3.4", wantErr: "missing port"},
		{in: "tcp:1.2.3.4:99999", wantErr: "bad port"},
		{in: "tcp::80", wantErr: "empty host"},
		{in: "tcp:[fe80::1%eth0]:80", wantErr: "zoned"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseAddr(tt.in)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("ParseAddr(%q) = %v, want error", tt.in, got)
				}
				if !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), `"`+tt.in+`"`) || !strings.HasPrefix(err.Error(), "transport: ") {
					t.Fatalf("ParseAddr(%q) error %q, want it to mention %q and quote the input", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseAddr(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
			back, err := ParseAddr(got.String())
			if err != nil || back != got {
				t.Fatalf("round trip of %q via %q = %v, %v", tt.in, got.String(), back, err)
			}
			text, _ := got.MarshalText()
			var u Addr
			if err := u.UnmarshalText(text); err != nil || u != got {
				t.Fatalf("text round trip = %v, %v", u, err)
			}
		})
	}
}

func TestAnyAddrs(t *testing.T) {
	for _, a := range []Addr{Local.Any(), Unix.Any(), TCP.Any(), TCP.AnyOn("127.0.0.1"), {Local, "0"}} {
		if !a.IsAny() {
			t.Errorf("%v.IsAny() = false", a)
		}
		if _, err := Dial(a, nil); err == nil {
			t.Errorf("Dial(%v) succeeded", a)
		}
	}
	if (Addr{TCP, "127.0.0.1:1"}).IsAny() {
		t.Error("concrete tcp address is any")
	}
}

func FuzzParseAddr(f *testing.F) {
	for _, s := range []string{"local:3", "unix:@abc", "unix:/x", "tcp:127.0.0.1:80", "tcp:[::1]:1", "tcp:[::ffff:1.2.3.4]:5", "tcp:h:0", "x", ":", "tcp:[::1]", "unix:@"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseAddr(s)
		if err != nil {
			return
		}
		b, err := ParseAddr(a.String())
		if err != nil {
			t.Fatalf("ParseAddr(%q) = %v, but its String %q does not parse: %v", s, a, a.String(), err)
		}
		if a != b {
			t.Fatalf("ParseAddr(%q) = %#v; reparsed %#v", s, a, b)
		}
	})
}
