package core

import (
	"encoding/binary"

	"github.com/actormesh/actormesh/internal/msgp"
	"github.com/actormesh/actormesh/transport"
)

// Batches. Small messages from one sender to one port, of one type,
// posted faster than the connection takes them travel as one frame: the
// transport lets a message be merged into the last one posted while that
// one still waits for the connection (transport.Sender.Coalesce), so
// nothing is delayed that could have gone out. The frame is an envelope of
// kind kindBatch whose last field is an array of bodies (array32, so that
// its count can be patched in place) instead of one body. The first
// message goes out as an ordinary envelope and becomes a batch when a
// second one is merged into it.

// Batching limits: a batch stops growing at batchMax bytes, and only
// types whose bodies were last at most batchBodyMax take part.
const (
	batchMax     = 16 << 10
	batchBodyMax = 1 << 10
)

// batchKey identifies the messages that may share a batch: one sender,
// one destination, one type, no headers. hdrLen is the length of their
// common envelope header, where the body (or the array of bodies) starts;
// merge works it out the first time it needs it.
type batchKey struct {
	sender ActorID
	dest   PortID
	mt     *msgType
	hdrLen int
}

// batchKeyFor returns the key for env, sent by c, or nil if env cannot be
// batched. A key costs an allocation, and each message sent with one a
// Coalesce (a look into the Sender under its lock); yet a message can
// only be merged into one posted before it to the same port. So the first
// message to a port goes without a key, and the second in a row gets one:
// a cell that answers a new reply port each time (a gather's leaf) then
// pays for neither.
func batchKeyFor(c *cell, env *envelope, mt *msgType) *batchKey {
	if c == nil || mt == nil || len(env.headers) != 0 || env.kind != kindMessage || mt.bodySize.Load() > batchBodyMax {
		return nil
	}
	if k := c.batchKey.Load(); k != nil && k.mt == mt && k.dest == env.dest {
		return k // a stream's every message after the second
	}
	c.batchMu.Lock()
	defer c.batchMu.Unlock()
	if c.batchLastType != mt || c.batchLastDest != env.dest {
		c.batchLastType, c.batchLastDest = mt, env.dest
		return nil
	}
	k := &batchKey{sender: env.sender, dest: env.dest, mt: mt}
	c.batchKey.Store(k)
	return k
}

// headerLen is the length of the envelope header of k's messages.
func (k *batchKey) headerLen() int {
	if k.hdrLen == 0 {
		h := envelope{sender: k.sender, dest: k.dest, typeName: k.mt.name}
		k.hdrLen = len(appendEnvelopeHeader(nil, &h))
	}
	return k.hdrLen
}

// merge appends env's body to last, a message posted under k (an envelope
// or a batch), turning it into a batch if need be. The result must stay
// within limit; on failure last is returned unchanged in content (though
// perhaps converted to a batch of one, which is equivalent).
func (k *batchKey) merge(last []byte, limit int, env *envelope) ([]byte, bool) {
	limit = min(limit, batchMax)
	hdrLen := k.headerLen()
	if len(last) >= limit || len(last) < hdrLen+5 {
		return last, false
	}
	b := last
	if b[2] == kindMessage {
		// [header][bin32 body] → [header][array32 of 1][bin32 body]
		b = growWire(b, 5+64)
		b = b[:len(b)+5]
		copy(b[hdrLen+5:], b[hdrLen:len(b)-5])
		b[hdrLen] = 0xdd
		binary.BigEndian.PutUint32(b[hdrLen+1:], 1)
		b[2] = kindBatch
	}
	at := len(b)
	b = growWire(b, 5+max(64, int(k.mt.bodySize.Load())))
	before := b
	b = append(b, 0xc6, 0, 0, 0, 0)
	b, err := k.mt.codec.AppendValue(b, env.value)
	if cap(b) != cap(before) {
		transport.ReleaseBuffer(before) // b outgrew it
	}
	if err != nil || len(b) > limit {
		return b[:at], false
	}
	binary.BigEndian.PutUint32(b[at+1:], uint32(len(b)-at-5))
	n := binary.BigEndian.Uint32(b[hdrLen+1:])
	binary.BigEndian.PutUint32(b[hdrLen+1:], n+1)
	return b, true
}

// growWire makes room for n more bytes in a wire buffer, moving it into a
// larger one from the transport's pool if need be.
func growWire(b []byte, n int) []byte {
	if cap(b)-len(b) >= n {
		return b
	}
	nb := transport.AllocBuffer(max(2*cap(b), len(b)+n))[:len(b)]
	copy(nb, b)
	transport.ReleaseBuffer(b)
	return nb
}

// firstBin splits off the first of a run of bins (validated when the
// batch was received: see receiveBatch).
func firstBin(b []byte) (first, rest []byte) {
	r := msgp.Reader{B: b}
	first, err := r.Bin()
	if err != nil {
		return nil, nil
	}
	return first, b[r.Off:]
}

// batchBodies checks the bodies of a batch, r being at their array, and
// returns them: a run of bins, which firstBin takes apart.
func batchBodies(r *msgp.Reader) ([]byte, error) {
	n, err := r.ArrayLen()
	if err != nil {
		return nil, err
	}
	if n > len(r.B)-r.Off {
		return nil, msgp.ErrShort
	}
	start := r.Off
	for range n {
		if _, err := r.Bin(); err != nil {
			return nil, err
		}
	}
	return r.B[start:r.Off], nil
}
