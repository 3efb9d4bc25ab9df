package transport

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Wire constants. spec.md describes the format; const_test.go pins it.
const (
	protoMagic   = "AMSH"
	protoVersion = uint16(1)

	// preambleSize is magic(4) + version(2) + body length(4), sent by both
	// sides before their msgpack handshake body.
	preambleSize = 10
	// maxHandshakeBody bounds the msgpack hello/reply body.
	maxHandshakeBody = 64 << 10

	// headerSize is type(1) + body length(4, big endian).
	headerSize = 5
	// seqSize is the data frame's sequence number (8, big endian) that
	// precedes the payload; an ack frame's body is one such number.
	seqSize = 8

	frameData  = byte(1) // client→server: seq + payload
	frameAck   = byte(2) // server→client: cumulative seq, all ≤ seq delivered
	framePing  = byte(3) // either way, empty body; the peer answers pong
	framePong  = byte(4) // either way, empty body
	frameClose = byte(5) // either way: code(1) + UTF-8 reason; sender then closes

	closeNormal   = byte(0) // peer is shutting down
	closeRejected = byte(1) // peer refuses this session (sequence gap, ...)

	maxCloseReason = 1024

	// DefaultMaxFrameSize is the default Options.MaxFrameSize.
	DefaultMaxFrameSize = 1 << 30

	// exactAllocLimit is the largest body the frame reader allocates in one
	// go; larger bodies grow as bytes actually arrive, so a lying header
	// cannot make us allocate memory the peer never sends. The 64 KiB over
	// 1 MiB let a 1 MiB payload with its envelope arrive in one allocation
	// rather than be copied into a second one.
	exactAllocLimit = 1<<20 + 64<<10
)

// errProtocol marks malformed input from the peer.
var errProtocol = errors.New("transport: protocol error")

// frame is one decoded frame. payload is freshly allocated, or for a large
// data frame taken from the buffer pool (AllocBuffer), and owned by whoever
// gets it (the handler, for data frames).
type frame struct {
	typ     byte
	seq     uint64 // data: the message's seq; ack: the cumulative seq
	payload []byte // data: the message; close: code + reason
}

// frameReader decodes frames from a buffered stream. It never allocates more
// than maxPayload+seqSize for one frame and never panics on garbage.
type frameReader struct {
	r          *bufio.Reader
	maxPayload int
	hdr        [headerSize + seqSize]byte
}

// readFrame reads the next frame. io.EOF means a clean end at a frame
// boundary; io.ErrUnexpectedEOF a truncated frame; errProtocol-wrapped
// errors mean garbage.
func (fr *frameReader) readFrame() (frame, error) {
	// Fast path for a data frame wholly in the buffer: one copy, no
	// io.ReadFull round trips.
	if b := fr.r.Buffered(); b >= headerSize+seqSize {
		h, _ := fr.r.Peek(headerSize + seqSize)
		n := int(binary.BigEndian.Uint32(h[1:headerSize]))
		if h[0] == frameData && n >= seqSize && n-seqSize <= fr.maxPayload && b >= headerSize+n {
			seq := binary.BigEndian.Uint64(h[headerSize:])
			fr.r.Discard(headerSize + seqSize)
			p := AllocBuffer(n - seqSize)
			fr.r.Read(p) // cannot come up short: the bytes are buffered
			return frame{typ: frameData, seq: seq, payload: p}, nil
		}
	}
	if _, err := io.ReadFull(fr.r, fr.hdr[:headerSize]); err != nil {
		return frame{}, err
	}
	typ := fr.hdr[0]
	n := uint64(binary.BigEndian.Uint32(fr.hdr[1:headerSize]))
	switch typ {
	case frameData:
		if n < seqSize {
			return frame{}, fmt.Errorf("%w: data frame of %d bytes is shorter than its sequence number", errProtocol, n)
		}
		if n-seqSize > uint64(fr.maxPayload) {
			return frame{}, fmt.Errorf("%w: data frame payload of %d bytes exceeds the maximum of %d", errProtocol, n-seqSize, fr.maxPayload)
		}
		if _, err := io.ReadFull(fr.r, fr.hdr[headerSize:]); err != nil {
			return frame{}, noEOF(err)
		}
		seq := binary.BigEndian.Uint64(fr.hdr[headerSize:])
		p, err := readBody(fr.r, int(n-seqSize))
		if err != nil {
			return frame{}, err
		}
		return frame{typ: typ, seq: seq, payload: p}, nil
	case frameAck:
		if n != seqSize {
			return frame{}, fmt.Errorf("%w: ack frame of %d bytes, want %d", errProtocol, n, seqSize)
		}
		if _, err := io.ReadFull(fr.r, fr.hdr[headerSize:]); err != nil {
			return frame{}, noEOF(err)
		}
		return frame{typ: typ, seq: binary.BigEndian.Uint64(fr.hdr[headerSize:])}, nil
	case framePing, framePong:
		if n != 0 {
			return frame{}, fmt.Errorf("%w: ping/pong frame with a %d byte body", errProtocol, n)
		}
		return frame{typ: typ}, nil
	case frameClose:
		if n < 1 || n > 1+maxCloseReason {
			return frame{}, fmt.Errorf("%w: close frame of %d bytes", errProtocol, n)
		}
		p, err := readBody(fr.r, int(n))
		if err != nil {
			return frame{}, err
		}
		return frame{typ: typ, payload: p}, nil
	}
	return frame{}, fmt.Errorf("%w: unknown frame type %d", errProtocol, typ)
}

// frameBuffered reports whether the next whole frame is already in the
// read buffer, i.e. reading it will not block.
func (fr *frameReader) frameBuffered() bool {
	b := fr.r.Buffered()
	if b < headerSize {
		return false
	}
	h, err := fr.r.Peek(headerSize)
	if err != nil {
		return false
	}
	return uint64(b) >= headerSize+uint64(binary.BigEndian.Uint32(h[1:]))
}

func readBody(r io.Reader, n int) ([]byte, error) {
	if n <= exactAllocLimit {
		p := AllocBuffer(n)
		if _, err := io.ReadFull(r, p); err != nil {
			ReleaseBuffer(p)
			return nil, noEOF(err)
		}
		return p, nil
	}
	p := make([]byte, 0, exactAllocLimit)
	for len(p) < n {
		if len(p) == cap(p) {
			c := min(2*cap(p), n)
			q := make([]byte, len(p), c)
			copy(q, p)
			p = q
		}
		m, err := r.Read(p[len(p):cap(p)])
		p = p[:len(p)+m]
		if err != nil && len(p) < n {
			return nil, noEOF(err)
		}
	}
	return p, nil
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// Frame encoders append to a bufio.Writer; they never fail on their own (a
// write error sticks in the bufio.Writer and surfaces at Flush).

func writeDataHeader(w *bufio.Writer, seq uint64, payloadLen int) {
	// Appending to the available buffer keeps the header off the heap.
	w.Write(appendDataHeader(w.AvailableBuffer(), seq, payloadLen))
}

func appendDataHeader(b []byte, seq uint64, payloadLen int) []byte {
	b = append(b, frameData)
	b = binary.BigEndian.AppendUint32(b, uint32(seqSize+payloadLen))
	return binary.BigEndian.AppendUint64(b, seq)
}

func writeAck(w *bufio.Writer, seq uint64) {
	var h [headerSize + seqSize]byte
	h[0] = frameAck
	binary.BigEndian.PutUint32(h[1:], seqSize)
	binary.BigEndian.PutUint64(h[headerSize:], seq)
	w.Write(h[:])
}

func writeEmpty(w *bufio.Writer, typ byte) {
	var h [headerSize]byte
	h[0] = typ
	w.Write(h[:])
}

func writeClose(w *bufio.Writer, code byte, reason string) {
	if len(reason) > maxCloseReason {
		reason = reason[:maxCloseReason]
	}
	var h [headerSize + 1]byte
	h[0] = frameClose
	binary.BigEndian.PutUint32(h[1:], uint32(1+len(reason)))
	h[headerSize] = code
	w.Write(h[:])
	w.WriteString(reason)
}
