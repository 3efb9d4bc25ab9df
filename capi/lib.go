package main

/*
#include "shim.h"
*/
import "C"

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/actormesh/actormesh/core"
	"github.com/actormesh/actormesh/internal/codec"
	"github.com/actormesh/actormesh/transport"
)

// Library states.
const (
	stateNew int32 = iota
	stateReady
	stateClosed
)

// releaser is implemented by objects that hold resources freed with their
// handle (or by mesh_shutdown).
type releaser interface{ release() }

// library is the process-wide state of libmesh.
type library struct {
	state   atomic.Int32
	handles registry

	ctx    context.Context // canceled by mesh_shutdown: ends every wait
	cancel context.CancelFunc

	maxPayload atomic.Int64

	mu      sync.Mutex
	initMu  sync.Mutex
	procs   map[*procObj]struct{}
	hosts   map[*hostMeshObj]struct{} // owned and not shut down yet
	bg      sync.WaitGroup            // background work (proc shutdowns of freed handles)
	fallbck *core.Instance            // owner for shutting down meshes whose owner is gone
}

var lib = newLibrary()

func newLibrary() *library {
	l := &library{procs: map[*procObj]struct{}{}, hosts: map[*hostMeshObj]struct{}{}}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	l.maxPayload.Store(transport.DefaultMaxFrameSize - frameHeadroom)
	return l
}

// ready reports whether the library may be used.
func (l *library) ready() error {
	switch l.state.Load() {
	case stateReady:
		return nil
	case stateClosed:
		return fail(statusEClosed, "libmesh: the library was shut down (mesh_shutdown)")
	}
	return fail(statusEState, "libmesh: not initialised: call mesh_init first")
}

// frameSize is the transport frame limit of procs the library creates.
func (l *library) frameSize() int {
	n := l.maxPayload.Load() + frameHeadroom
	if n > transport.DefaultMaxFrameSize {
		n = transport.DefaultMaxFrameSize
	}
	return int(n)
}

// checkSize refuses payloads above the maximum message size.
func checkSize(n int, what string) error {
	if max := lib.maxPayload.Load(); int64(n) > max {
		return fail(statusETooBig, "libmesh: %s of %d bytes exceeds the maximum message size of %d bytes", what, n, max)
	}
	return nil
}

// waitCtx derives the context of a blocking call from timeout_ms.
func waitCtx(timeoutMS int64) (context.Context, context.CancelFunc, error) {
	switch {
	case timeoutMS == -1:
		ctx, cancel := context.WithCancel(lib.ctx)
		return ctx, cancel, nil
	case timeoutMS < -1:
		return nil, nil, fail(statusEInval, "libmesh: timeout_ms is %d: want -1 (no limit), 0 or a positive number of milliseconds", timeoutMS)
	}
	ctx, cancel := context.WithTimeout(lib.ctx, time.Duration(timeoutMS)*time.Millisecond)
	return ctx, cancel, nil
}

// ctxErr explains why ctx ended, for the operation op.
func ctxErr(ctx context.Context, op string) error {
	if lib.ctx.Err() != nil {
		return fail(statusEClosed, "libmesh: %s: the library is shutting down", op)
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fail(statusTimeout, "libmesh: %s: timed out", op)
	}
	return fail(statusEClosed, "libmesh: %s: %v", op, ctx.Err())
}

// opErr converts the error of a blocking mesh operation: a deadline is
// MESH_TIMEOUT, a shutdown MESH_ECLOSED, and the rest keeps its kind.
func opErr(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if lib.ctx.Err() != nil {
		return fail(statusEClosed, "libmesh: the library is shutting down: %v", err)
	}
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return fail(statusTimeout, "%v", err)
	}
	return err
}

type config struct {
	MaxMessageSize *int64  `json:"max_message_size"`
	LogLevel       *string `json:"log_level"`
}

//export meshgo_init
func meshgo_init(cfg *C.char) (rc C.int32_t) {
	defer recoverTo(&rc)
	lib.initMu.Lock()
	defer lib.initMu.Unlock()
	switch lib.state.Load() {
	case stateReady:
		return statusOK
	case stateClosed:
		return ret(lib.ready())
	}
	var c config
	if cfg != nil {
		text := C.GoString(cfg)
		dec := json.NewDecoder(strings.NewReader(text))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&c); err != nil {
			return ret(fail(statusEInval, "libmesh: mesh_init config %q: %v (want a JSON object with max_message_size, log_level)", text, err))
		}
		if dec.More() {
			return ret(fail(statusEInval, "libmesh: mesh_init config %q: trailing data", text))
		}
	}
	level := slog.LevelWarn
	if c.LogLevel != nil {
		if err := level.UnmarshalText([]byte(*c.LogLevel)); err != nil {
			return ret(fail(statusEInval, "libmesh: mesh_init config: log_level %q: want debug, info, warn or error", *c.LogLevel))
		}
	}
	if c.MaxMessageSize != nil {
		n := *c.MaxMessageSize
		if n < 1 || n > transport.DefaultMaxFrameSize-frameHeadroom {
			return ret(fail(statusEInval, "libmesh: mesh_init config: max_message_size %d: want 1 to %d", n, transport.DefaultMaxFrameSize-frameHeadroom))
		}
		lib.maxPayload.Store(n)
	}
	slog.SetLogLoggerLevel(level)
	lib.state.Store(stateReady)
	return statusOK
}

//export meshgo_shutdown
func meshgo_shutdown(timeoutMS C.int64_t) (rc C.int32_t) {
	defer recoverTo(&rc)
	if timeoutMS < -1 {
		return ret(fail(statusEInval, "libmesh: timeout_ms is %d: want -1, 0 or a positive number of milliseconds", int64(timeoutMS)))
	}
	lib.initMu.Lock()
	defer lib.initMu.Unlock()
	switch lib.state.Swap(stateClosed) {
	case stateClosed:
		return statusOK
	case stateNew:
		lib.cancel()
		return statusOK
	}
	d := time.Duration(timeoutMS) * time.Millisecond
	if timeoutMS == -1 {
		d = unlimitedShutdown
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return ret(lib.shutdown(ctx))
}

// shutdown stops everything the library owns, within ctx.
func (l *library) shutdown(ctx context.Context) error {
	l.cancel() // ends every wait in progress
	var problems []string
	var pmu sync.Mutex
	problem := func(format string, args ...any) {
		pmu.Lock()
		problems = append(problems, fmt.Sprintf(format, args...))
		pmu.Unlock()
	}

	// Host meshes first: their procs and hosts are OS processes.
	l.mu.Lock()
	hosts := make([]*hostMeshObj, 0, len(l.hosts))
	for h := range l.hosts {
		hosts = append(hosts, h)
	}
	l.mu.Unlock()
	var wg sync.WaitGroup
	for _, h := range hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				if r := recover(); r != nil {
					problem("host mesh %q: panic: %v", h.hm.Name(), r)
				}
			}()
			if err := h.shutdown(ctx, nil); err != nil {
				problem("host mesh %q: %v", h.hm.Name(), err)
			}
		}()
	}
	wg.Wait()

	// Then every handle's resources: ports, pollers, instances.
	for _, obj := range l.handles.drain() {
		if r, ok := obj.(releaser); ok {
			r.release()
		}
	}

	// Then the procs (the handle drain released those still referenced).
	l.mu.Lock()
	procs := make([]*procObj, 0, len(l.procs))
	for p := range l.procs {
		procs = append(procs, p)
	}
	l.mu.Unlock()
	for _, p := range procs {
		p.release()
	}
	done := make(chan struct{})
	go func() {
		l.bg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		problem("procs did not shut down in time")
	}
	l.mu.Lock()
	fb := l.fallbck
	l.mu.Unlock()
	if fb != nil {
		fbCtx, cancel := context.WithTimeout(context.Background(), time.Second)
		fb.Proc().Shutdown(fbCtx)
		cancel()
	}
	if len(problems) > 0 {
		code := int32(statusEInternal)
		if ctx.Err() != nil {
			code = statusTimeout
		}
		return fail(code, "libmesh: mesh_shutdown: %s", strings.Join(problems, "; "))
	}
	return nil
}

// fallbackInstance is an owner for operations whose owner is gone (the
// application freed the instance before shutting its meshes down).
func (l *library) fallbackInstance() (*core.Instance, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fallbck != nil {
		return l.fallbck, nil
	}
	p, err := core.DirectProc(transport.Unix.Any(), "capi_owner", &core.ProcOptions{Transport: transport.Options{MaxFrameSize: l.frameSize()}})
	if err != nil {
		return nil, err
	}
	inst, _, err := p.Instance("owner")
	if err != nil {
		return nil, err
	}
	l.fallbck = inst
	return inst, nil
}

// goBackground runs f in the background, tracked for mesh_shutdown, with
// panics contained.
func (l *library) goBackground(f func()) {
	l.bg.Add(1)
	go func() {
		defer l.bg.Done()
		defer func() {
			if r := recover(); r != nil {
				slog.Error("libmesh: panic in background work", "panic", r)
			}
		}()
		f()
	}()
}

//export meshgo_handle_free
func meshgo_handle_free(h C.uint64_t) {
	defer func() {
		if r := recover(); r != nil {
			slog.Error("libmesh: panic in mesh_handle_free", "panic", r)
		}
	}()
	if lib.state.Load() != stateReady {
		return
	}
	obj, ok := lib.handles.remove(uint64(h))
	if !ok {
		return
	}
	if r, ok := obj.(releaser); ok {
		r.release()
	}
}

// validMsgpack reports whether b is exactly one msgpack value.
func validMsgpack(b []byte, what string) error {
	if len(b) == 0 {
		return fail(statusEInval, "libmesh: %s is empty: want one msgpack value", what)
	}
	n, err := codec.SkipOne(b)
	if err != nil {
		return fail(statusEInval, "libmesh: %s is not valid msgpack: %v", what, err)
	}
	if n != len(b) {
		return fail(statusEInval, "libmesh: %s has %d bytes after its msgpack value: want exactly one value", what, len(b)-n)
	}
	return nil
}
