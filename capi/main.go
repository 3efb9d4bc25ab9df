// Command capi is libmesh.so, the C ABI of actormesh, built with
// go build -buildmode=c-shared (make lib). include/mesh.h is its contract.
//
// Layout: shim.c holds the public mesh_* entry points, which check for a
// forked child before calling the Go implementations exported here as
// meshgo_*. Every export recovers panics (MESH_EPANIC, with the stack in
// the error text), reports errors through the calling thread's error text,
// and writes results only through its out-parameters.
package main

/*
#cgo CFLAGS: -I${SRCDIR}/../include -std=gnu11 -Wall
#include <stdlib.h>
#include <string.h>
#include "shim.h"
*/
import "C"

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"unsafe"

	"github.com/actormesh/actormesh/core"
	"github.com/actormesh/actormesh/mesh"
)

func main() {}

// Status codes, as in mesh.h.
const (
	statusOK          = 0
	statusAgain       = 1
	statusTimeout     = 2
	statusEInval      = -1
	statusEBadHandle  = -2
	statusENotFound   = -3
	statusEClosed     = -4
	statusETooBig     = -5
	statusESupervise  = -6
	statusEForked     = -7
	statusEPanic      = -8
	statusEInternal   = -9
	statusEState      = -10
	statusERemote     = -11
	msgKindData       = 1
	msgKindSupervise  = 2
	msgKindUndeliver  = 3
	msgKindClosed     = 4
	abiVersion        = C.MESH_ABI_VERSION
	supervisionType   = "mesh.MeshFailure"
	castType          = "mesh.Cast"
	maxErrText        = C.MESHC_ERRMAX
	frameHeadroom     = 64 << 10
	defaultWaitSlice  = 250e6 // ns: the longest a wait sleeps before it re-checks its state
	unlimitedShutdown = 120e9 // ns: mesh_shutdown(-1)'s overall bound
)

// statusError is an error with its status code.
type statusError struct {
	code  int32
	msg   string
	cause error // what wrap gave a code to, for errors.Is
}

func (e *statusError) Error() string { return e.msg }
func (e *statusError) Unwrap() error { return e.cause }

func fail(code int32, format string, args ...any) error {
	return &statusError{code: code, msg: fmt.Sprintf(format, args...)}
}

// wrap gives err a status code unless it has one: its own if it is an
// error statusOf knows (a stopped instance is MESH_ECLOSED wherever it
// comes from), else code.
func wrap(code int32, err error) error {
	if err == nil {
		return nil
	}
	var se *statusError
	if errors.As(err, &se) {
		return err
	}
	if own := statusOf(err); own != statusEInternal {
		code = own
	}
	return &statusError{code: code, msg: err.Error(), cause: err}
}

// statusOf maps an error to its status code.
func statusOf(err error) int32 {
	var se *statusError
	var me *mesh.MeshError
	var mf mesh.MeshFailure
	switch {
	case err == nil:
		return statusOK
	case errors.As(err, &se):
		return se.code
	case errors.As(err, &me), errors.As(err, &mf):
		return statusESupervise
	case errors.Is(err, context.DeadlineExceeded):
		return statusTimeout
	case errors.Is(err, context.Canceled), errors.Is(err, core.ErrPortClosed),
		errors.Is(err, core.ErrInstanceStopped), errors.Is(err, core.ErrProcStopped):
		return statusEClosed
	case errors.Is(err, core.ErrUnknownActorType), strings.Contains(err.Error(), core.ErrUnknownActorType.Error()):
		return statusENotFound
	}
	return statusEInternal
}

// setErr stores msg as the calling thread's error text. Exports run on the
// thread of the C caller, so the text lands where mesh_errmsg reads it.
func setErr(msg string) {
	if msg == "" {
		msg = "libmesh: unspecified error"
	}
	C.meshc_set_err((*C.char)(unsafe.Pointer(unsafe.StringData(msg))), C.size_t(len(msg)))
}

// handleOut runs f, which makes a handle, for an export whose OUT
// parameter receives it: out is zeroed first (and stays zero on failure),
// and f learns whether out may be written (outOK false is MESH_EINVAL).
func handleOut(out *C.uint64_t, f func(outOK bool) (uint64, error)) C.int32_t {
	if out != nil {
		*out = 0
	}
	h, err := f(out != nil)
	if err == nil {
		*out = C.uint64_t(h)
	}
	return ret(err)
}

// ret reports err (if any) and returns its status.
func ret(err error) C.int32_t {
	if err == nil {
		return statusOK
	}
	code := statusOf(err)
	setErr(err.Error())
	return C.int32_t(code)
}

// info returns an informational status (AGAIN, TIMEOUT) with its text.
func info(code int32, msg string) C.int32_t {
	setErr(msg)
	return C.int32_t(code)
}

// recoverTo turns a panic into MESH_EPANIC; every export defers it.
func recoverTo(rc *C.int32_t) {
	if r := recover(); r != nil {
		setErr(fmt.Sprintf("libmesh: internal panic: %v\n%s", r, debug.Stack()))
		*rc = statusEPanic
	}
}

// ---- C memory ----------------------------------------------------------

// setBuf fills *b with a malloc'd copy of data, NUL-terminated. An empty
// output is {NULL, 0}.
func setBuf(b *C.mesh_buf_t, data []byte) {
	if b == nil {
		return
	}
	if len(data) == 0 {
		b.data, b.len = nil, 0
		return
	}
	p := C.meshc_malloc(C.size_t(len(data) + 1))
	dst := unsafe.Slice((*byte)(p), len(data)+1)
	copy(dst, data)
	dst[len(data)] = 0
	b.data, b.len = (*C.uint8_t)(p), C.size_t(len(data))
}

func setBufString(b *C.mesh_buf_t, s string) {
	setBuf(b, unsafe.Slice(unsafe.StringData(s), len(s)))
}

func zeroBuf(b *C.mesh_buf_t) {
	if b != nil {
		b.data, b.len = nil, 0
	}
}

func zeroMsg(m *C.mesh_msg_t) {
	if m != nil {
		*m = C.mesh_msg_t{}
	}
}

// goBytes copies n bytes at p (nil for none). n > 0 with p == NULL is an error.
func goBytes(p *C.uint8_t, n C.size_t, what string) ([]byte, error) {
	if n == 0 {
		return nil, nil
	}
	if p == nil {
		return nil, fail(statusEInval, "libmesh: %s is NULL but its length is %d", what, uint64(n))
	}
	if uint64(n) > 1<<40 {
		return nil, fail(statusEInval, "libmesh: %s length %d is not plausible", what, uint64(n))
	}
	return bytes.Clone(unsafe.Slice((*byte)(unsafe.Pointer(p)), int(n))), nil
}

// goString copies a C string; NULL is an error naming what.
func goString(p *C.char, what string) (string, error) {
	if p == nil {
		return "", fail(statusEInval, "libmesh: %s is NULL", what)
	}
	return C.GoString(p), nil
}

// goStringOr copies a C string; NULL gives def.
func goStringOr(p *C.char, def string) string {
	if p == nil {
		return def
	}
	return C.GoString(p)
}

// goStrings copies a NULL-terminated array of C strings (NULL: none).
func goStrings(p **C.char, what string) ([]string, error) {
	if p == nil {
		return nil, nil
	}
	var out []string
	for i := 0; ; i++ {
		if i > 1<<16 {
			return nil, fail(statusEInval, "libmesh: %s has no NULL terminator within %d entries", what, 1<<16)
		}
		s := *(**C.char)(unsafe.Add(unsafe.Pointer(p), uintptr(i)*unsafe.Sizeof(p)))
		if s == nil {
			return out, nil
		}
		out = append(out, C.GoString(s))
	}
}

func needOut(ok bool, what string) error {
	if !ok {
		return fail(statusEInval, "libmesh: out-parameter %s is NULL", what)
	}
	return nil
}
