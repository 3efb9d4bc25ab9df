package alloc

import (
	"bytes"
	"io"
	"sync"
)

// maxLineBytes bounds a buffered partial line, so a child writing without
// newlines cannot grow the parent's memory without limit.
const maxLineBytes = 64 << 10

// DefaultTailLines is how many of a child's last stderr lines are kept for
// its StopReason.
const DefaultTailLines = 50

// outputMu serialises the lines of every OutputTail, so that lines of
// different children never interleave mid-line on a shared writer.
var outputMu sync.Mutex

// OutputTail forwards a child's output line by line with a prefix, and
// keeps the last lines (when keep > 0) for error reports. Give it to
// exec.Cmd as Stdout and/or Stderr; call Flush once Wait returned.
type OutputTail struct {
	prefix []byte
	out    io.Writer
	outMu  *sync.Mutex

	mu      sync.Mutex
	partial []byte
	tail    []string
	keep    int
}

// NewOutputTail forwards to out (nil: forward nothing) with prefix before
// each line, keeping the last keep lines.
func NewOutputTail(prefix string, out io.Writer, keep int) *OutputTail {
	return &OutputTail{prefix: []byte(prefix), out: out, outMu: &outputMu, keep: keep}
}

func (w *OutputTail) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			w.partial = append(w.partial, p...)
			if len(w.partial) >= maxLineBytes {
				w.emitLocked(w.partial)
				w.partial = w.partial[:0]
			}
			break
		}
		if len(w.partial) > 0 {
			w.partial = append(w.partial, p[:i]...)
			w.emitLocked(w.partial)
			w.partial = w.partial[:0]
		} else {
			w.emitLocked(p[:i])
		}
		p = p[i+1:]
	}
	return n, nil
}

// Flush emits a final line that had no newline.
func (w *OutputTail) Flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.partial) > 0 {
		w.emitLocked(w.partial)
		w.partial = nil
	}
}

func (w *OutputTail) emitLocked(line []byte) {
	if w.out != nil {
		buf := make([]byte, 0, len(w.prefix)+len(line)+1)
		buf = append(append(append(buf, w.prefix...), line...), '\n')
		w.outMu.Lock()
		w.out.Write(buf) // best effort: a broken parent stderr must not block the child
		w.outMu.Unlock()
	}
	if w.keep > 0 {
		if len(w.tail) == w.keep {
			copy(w.tail, w.tail[1:])
			w.tail = w.tail[:w.keep-1]
		}
		w.tail = append(w.tail, string(line))
	}
}

// Lines returns the kept lines, oldest first.
func (w *OutputTail) Lines() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.tail...)
}
