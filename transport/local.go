package transport

import (
	"fmt"
	"strconv"
	"sync"
	"time"
)

// The process-wide table of served local ports: with the buffer pool
// (pool.go), the package's only global state.
var localTable struct {
	mu      sync.Mutex
	last    uint64
	servers map[uint64]*localServer
}

type localServer struct {
	port     uint64
	srv      *Server
	mu       sync.Mutex
	closed   bool
	inflight sync.WaitGroup
}

func serveLocal(addr Addr, s *Server) (*localServer, error) {
	var port uint64
	if addr.Address != "" {
		p, err := strconv.ParseUint(addr.Address, 10, 63)
		if err != nil {
			return nil, fmt.Errorf("transport: serve %s: local port must be a decimal number", addr)
		}
		port = p
	}
	localTable.mu.Lock()
	defer localTable.mu.Unlock()
	if localTable.servers == nil {
		localTable.servers = make(map[uint64]*localServer)
	}
	if port == 0 {
		for {
			localTable.last++
			if localTable.servers[localTable.last] == nil {
				break
			}
		}
		port = localTable.last
	} else if localTable.servers[port] != nil {
		return nil, fmt.Errorf("transport: serve %s: address already in use", addr)
	}
	ls := &localServer{port: port, srv: s}
	localTable.servers[port] = ls
	return ls, nil
}

func lookupLocal(port uint64) *localServer {
	localTable.mu.Lock()
	defer localTable.mu.Unlock()
	return localTable.servers[port]
}

// enter admits one handler call; false once the server closed.
func (ls *localServer) enter() bool {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.closed {
		return false
	}
	ls.inflight.Add(1)
	return true
}

func (ls *localServer) isClosed() bool {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return ls.closed
}

func (ls *localServer) close() {
	ls.mu.Lock()
	ls.closed = true
	ls.mu.Unlock()
	localTable.mu.Lock()
	if localTable.servers[ls.port] == ls {
		delete(localTable.servers, ls.port)
	}
	localTable.mu.Unlock()
	ls.inflight.Wait()
}

// localSender delivers in-process: a queue drained by a goroutine that runs
// only while the queue is non-empty, calling the handler directly (serial per
// sender, like a net session). Messages are not copied.
type localSender struct {
	addr     Addr
	port     uint64
	cfg      config
	notify   *notifier
	mu       sync.Mutex
	srv      *localServer // the server this sender talks to; re-resolved once closed
	q        []localEntry
	running  bool
	closed   bool
	abandon  bool // Close's flush time is up: fail what is left
	drained  chan struct{}
	wg       sync.WaitGroup
	qscratch []localEntry
}

type localEntry struct {
	msg    []byte
	srv    *localServer
	waiter chan error
}

func dialLocal(addr Addr, cfg config, n *notifier) (*localSender, error) {
	port, err := strconv.ParseUint(addr.Address, 10, 63)
	if err != nil || port == 0 {
		return nil, fmt.Errorf("transport: dial %s: invalid local port", addr)
	}
	ls := lookupLocal(port)
	if ls == nil {
		return nil, fmt.Errorf("transport: dial %s: %w", addr, ErrClosed)
	}
	return &localSender{addr: addr, port: port, cfg: cfg, notify: n, srv: ls}, nil
}

// enqueue returns an error instead of queueing when the message cannot be
// delivered at all.
func (s *localSender) enqueue(msg []byte, waiter chan error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if s.srv.isClosed() {
		// A new server on the same port is a new receiver; messages queued
		// for the old one still fail (their entries keep the old server).
		if ls := lookupLocal(s.port); ls != nil {
			s.srv = ls
		} else {
			return ErrClosed
		}
	}
	s.q = append(s.q, localEntry{msg: msg, srv: s.srv, waiter: waiter})
	if !s.running {
		s.running = true
		s.wg.Add(1)
		go s.loop()
	}
	return nil
}

func (s *localSender) loop() {
	defer s.wg.Done()
	for {
		s.mu.Lock()
		// Swap buffers: Posts append to one while this goroutine drains the
		// other; the two never alias.
		batch := s.q
		s.q, s.qscratch = s.qscratch[:0], nil
		abandon := s.abandon
		if len(batch) == 0 {
			s.qscratch = batch
			s.running = false
			if s.drained != nil {
				close(s.drained)
				s.drained = nil
			}
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		var failed []undelivered
		for i := range batch {
			e := &batch[i]
			s.mu.Lock()
			abandon = abandon || s.abandon
			s.mu.Unlock()
			if abandon || !e.srv.enter() {
				reason := ErrClosed
				err := &UndeliverableError{Addr: s.addr, Reason: reason}
				if e.waiter != nil {
					e.waiter <- err
				} else {
					failed = append(failed, undelivered{e.msg, err})
				}
			} else {
				if k := e.srv.srv.deliver(e.msg); k != nil {
					// This goroutine serves every message of the session:
					// a continuation that blocks must not hold them up.
					e.srv.srv.dispatch(k)
				}
				e.srv.inflight.Done()
				if e.waiter != nil {
					e.waiter <- nil
				}
			}
			*e = localEntry{}
		}
		s.notify.push(failed...)
		s.mu.Lock()
		s.qscratch = batch[:0]
		s.mu.Unlock()
	}
}

// idle: open, with nothing queued or being delivered.
func (s *localSender) idle() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.closed && len(s.q) == 0 && !s.running
}

func (s *localSender) close() {
	s.mu.Lock()
	s.closed = true
	var drained chan struct{}
	if s.running {
		drained = make(chan struct{})
		s.drained = drained
	}
	s.mu.Unlock()
	if drained != nil {
		t := time.NewTimer(min(maxFlushOnClose, s.cfg.deliveryTimeout))
		select {
		case <-drained:
		case <-t.C:
			s.mu.Lock()
			s.abandon = true
			s.mu.Unlock()
		}
		t.Stop()
	}
	s.wg.Wait()
}
