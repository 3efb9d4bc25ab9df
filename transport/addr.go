package transport

import (
	"crypto/rand"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// Transport names a kind of channel. Its Any method gives an address that
// asks Serve to bind something fresh.
type Transport uint8

const (
	// Local channels live inside one OS process: local:N.
	Local Transport = iota + 1
	// Unix channels are unix-domain stream sockets: unix:/path or unix:@abstract.
	Unix
	// TCP channels are TCP connections: tcp:HOST:PORT, IPv6 hosts in brackets.
	TCP
)

func (t Transport) String() string {
	switch t {
	case Local:
		return "local"
	case Unix:
		return "unix"
	case TCP:
		return "tcp"
	}
	return "transport(" + strconv.Itoa(int(t)) + ")"
}

// ParseTransport parses a transport name as printed by String.
func ParseTransport(s string) (Transport, error) {
	switch s {
	case "local":
		return Local, nil
	case "unix":
		return Unix, nil
	case "tcp":
		return TCP, nil
	}
	return 0, fmt.Errorf("transport: unknown transport %q", s)
}

// Any returns the address that, given to Serve, binds a fresh address of this
// transport: a new local port, a random abstract unix name, or an ephemeral
// port on the IPv6 loopback (IPv4 where IPv6 is unavailable is the caller's
// choice: TCP.AnyOn("127.0.0.1")).
func (t Transport) Any() Addr {
	return Addr{Transport: t}
}

// AnyOn is like Any but binds on the given host (TCP only).
func (t Transport) AnyOn(host string) Addr {
	return Addr{Transport: t, Address: net.JoinHostPort(host, "0")}
}

// Addr is a channel address. It is comparable, so it can key maps, and its
// text form (String) parses back with ParseAddr.
//
// Address holds the transport-specific part: the port number for Local, the
// path or "@name" for Unix, and "host:port" for TCP. An empty Address (or
// local:0, or tcp port 0) means "any" and is only meaningful to Serve.
type Addr struct {
	Transport Transport
	Address   string
}

// IsAny reports whether Serve would choose the concrete address.
func (a Addr) IsAny() bool {
	switch a.Transport {
	case Local:
		return a.Address == "" || a.Address == "0"
	case Unix:
		return a.Address == ""
	case TCP:
		if a.Address == "" {
			return true
		}
		_, port, err := net.SplitHostPort(a.Address)
		return err == nil && port == "0"
	}
	return false
}

// String gives the text form: "local:3", "unix:@k3x", "unix:/run/x.sock",
// "tcp:127.0.0.1:4000", "tcp:[::1]:4000".
func (a Addr) String() string {
	if a.Transport == 0 {
		return "<nil addr>"
	}
	if a.Address == "" && a.Transport == Local {
		return "local:0"
	}
	return a.Transport.String() + ":" + a.Address
}

// MarshalText and UnmarshalText make addresses usable in msgpack, JSON and
// flag values with their text form.
// The zero address is the empty text, so that optional addresses survive.
func (a Addr) MarshalText() ([]byte, error) {
	if a.Transport == 0 {
		return nil, nil
	}
	return []byte(a.String()), nil
}

// UnmarshalText parses the text form.
func (a *Addr) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*a = Addr{}
		return nil
	}
	p, err := ParseAddr(string(b))
	if err != nil {
		return err
	}
	*a = p
	return nil
}

// ParseAddr parses the text form produced by Addr.String. Addresses never
// contain a comma, which lets identifiers put a name after one.
func ParseAddr(s string) (Addr, error) {
	kind, rest, ok := strings.Cut(s, ":")
	if !ok {
		return Addr{}, fmt.Errorf("transport: invalid address %q: no transport specified", s)
	}
	t, err := ParseTransport(kind)
	if err != nil {
		return Addr{}, fmt.Errorf("transport: invalid address %q: unknown transport %q", s, kind)
	}
	if strings.ContainsAny(rest, ", \t\r\n") {
		return Addr{}, fmt.Errorf("transport: invalid address %q: contains a comma or white space", s)
	}
	switch t {
	case Local:
		n, err := strconv.ParseUint(rest, 10, 63)
		if err != nil || strconv.FormatUint(n, 10) != rest {
			return Addr{}, fmt.Errorf("transport: invalid address %q: local port must be a decimal number", s)
		}
		return Addr{Transport: Local, Address: rest}, nil
	case Unix:
		if rest == "" {
			return Addr{Transport: Unix}, nil // Unix.Any(), as printed by String
		}
		if rest == "@" {
			return Addr{}, fmt.Errorf("transport: invalid address %q: empty unix socket name", s)
		}
		if strings.ContainsRune(rest, 0) {
			return Addr{}, fmt.Errorf("transport: invalid address %q: NUL in unix socket name", s)
		}
		if len(rest) > 107 {
			return Addr{}, fmt.Errorf("transport: invalid address %q: unix socket name longer than 107 bytes", s)
		}
		return Addr{Transport: Unix, Address: rest}, nil
	case TCP:
		if rest == "" {
			return Addr{Transport: TCP}, nil // TCP.Any(), as printed by String
		}
		host, port, err := net.SplitHostPort(rest)
		if err != nil {
			return Addr{}, fmt.Errorf("transport: invalid address %q: %v", s, err)
		}
		p, err := strconv.ParseUint(port, 10, 16)
		if err != nil || strconv.FormatUint(p, 10) != port {
			return Addr{}, fmt.Errorf("transport: invalid address %q: bad port %q", s, port)
		}
		if host == "" {
			return Addr{}, fmt.Errorf("transport: invalid address %q: empty host", s)
		}
		if ip, err := netip.ParseAddr(host); err == nil {
			if ip.Zone() != "" {
				return Addr{}, fmt.Errorf("transport: invalid address %q: zoned addresses are not supported", s)
			}
			host = ip.Unmap().String()
		} else if strings.ContainsAny(host, "[]%@/") {
			return Addr{}, fmt.Errorf("transport: invalid address %q: bad host %q", s, host)
		}
		return Addr{Transport: TCP, Address: net.JoinHostPort(host, port)}, nil
	}
	return Addr{}, fmt.Errorf("transport: invalid address %q", s)
}

// MustParseAddr is ParseAddr for addresses known at compile time.
func MustParseAddr(s string) Addr {
	a, err := ParseAddr(s)
	if err != nil {
		panic(err)
	}
	return a
}

// randomName returns n lowercase base-36 characters for abstract socket names.
func randomName(n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}
