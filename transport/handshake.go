package transport

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/vmihailenco/msgpack/v5"
)

// hello is the client's handshake body (msgpack).
type hello struct {
	Version uint16 `msgpack:"version"`
	// Session identifies the sender session (16 random bytes); reconnects
	// of the same session resend with the original seqs.
	Session []byte `msgpack:"session"`
	// FirstSeq is the lowest seq the client may still send: everything below
	// was acknowledged. A server that does not know the session starts it
	// here (its table entry may have expired while the sender was idle).
	FirstSeq uint64 `msgpack:"first_seq"`
	// KeepaliveMillis is the client's keepalive interval; the server uses
	// the larger of both intervals for its dead-peer deadline.
	KeepaliveMillis int64 `msgpack:"keepalive_ms"`
	// Auth is reserved for peer authentication; ignored for now.
	Auth []byte `msgpack:"auth,omitempty"`
}

// helloReply is the server's handshake body (msgpack). Its layout must stay
// readable by every version, because it also carries version refusals.
type helloReply struct {
	OK      bool   `msgpack:"ok"`
	Version uint16 `msgpack:"version"`
	// Incarnation is random per Serve call: a different value on reconnect
	// means another process (or server) took over the address.
	Incarnation []byte `msgpack:"incarnation"`
	// Delivered is the highest seq already delivered for the session, or -1.
	Delivered       int64  `msgpack:"delivered"`
	KeepaliveMillis int64  `msgpack:"keepalive_ms"`
	Error           string `msgpack:"error,omitempty"`
}

const sessionIDSize = 16

func versionMismatch(local, peer uint16) string {
	return fmt.Sprintf("protocol version mismatch: peer speaks version %d, this side speaks version %d", peer, local)
}

// writePreamble writes magic, version and a length-prefixed msgpack body.
func writePreamble(w *bufio.Writer, v any) error {
	body, err := msgpack.Marshal(v)
	if err != nil {
		return fmt.Errorf("transport: encoding handshake: %w", err)
	}
	var p [preambleSize]byte
	copy(p[:], protoMagic)
	binary.BigEndian.PutUint16(p[4:], protoVersion)
	binary.BigEndian.PutUint32(p[6:], uint32(len(body)))
	w.Write(p[:])
	w.Write(body)
	return w.Flush()
}

// readPreamble reads magic, version and the raw body. The body is returned
// undecoded so that a version refusal can be produced without understanding
// a foreign body.
func readPreamble(r io.Reader) (version uint16, body []byte, err error) {
	var p [preambleSize]byte
	if _, err := io.ReadFull(r, p[:]); err != nil {
		return 0, nil, fmt.Errorf("transport: reading handshake: %w", err)
	}
	if string(p[:4]) != protoMagic {
		return 0, nil, fmt.Errorf("%w: bad handshake magic %q", errProtocol, p[:4])
	}
	version = binary.BigEndian.Uint16(p[4:])
	n := binary.BigEndian.Uint32(p[6:])
	if n > maxHandshakeBody {
		return version, nil, fmt.Errorf("%w: handshake body of %d bytes", errProtocol, n)
	}
	body = make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return version, nil, fmt.Errorf("transport: reading handshake: %w", noEOF(err))
	}
	return version, body, nil
}
