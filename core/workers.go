package core

import "sync"

// workers runs actor loops on a few parked goroutines instead of a fresh
// goroutine per burst of messages. A fresh goroutine starts on a small
// stack, and decoding a message (reflection-heavy msgpack) grows it every
// time: copying stacks cost more than the message itself. An idle actor
// still has no goroutine; only up to maxIdleWorkers warm ones wait per proc.
type workers struct {
	mu     sync.Mutex
	idle   []chan cellStart
	closed bool
}

type cellStart struct {
	c    *cell
	init bool
}

const maxIdleWorkers = 8

func (w *workers) start(c *cell, init bool) {
	w.mu.Lock()
	if n := len(w.idle); n > 0 {
		ch := w.idle[n-1]
		w.idle[n-1] = nil
		w.idle = w.idle[:n-1]
		w.mu.Unlock()
		ch <- cellStart{c, init}
		return
	}
	w.mu.Unlock()
	go w.loop(cellStart{c, init})
}

func (w *workers) loop(s cellStart) {
	var ch chan cellStart
	for {
		s.c.run(s.init)
		w.mu.Lock()
		if w.closed || len(w.idle) >= maxIdleWorkers {
			w.mu.Unlock()
			return
		}
		if ch == nil {
			ch = make(chan cellStart, 1)
		}
		w.idle = append(w.idle, ch)
		w.mu.Unlock()
		var ok bool
		if s, ok = <-ch; !ok {
			return
		}
	}
}

// close lets the idle workers exit; later starts use plain goroutines
// that exit when their actor goes idle.
func (w *workers) close() {
	w.mu.Lock()
	w.closed = true
	idle := w.idle
	w.idle = nil
	w.mu.Unlock()
	for _, ch := range idle {
		close(ch)
	}
}
