// Internal declarations shared by shim.c and the Go files of package main
// (capi). Nothing here is part of the ABI: see include/mesh.h.
#ifndef MESH_CAPI_SHIM_H
#define MESH_CAPI_SHIM_H

#include <stddef.h>
#include <stdint.h>

#include "mesh.h"

// Size of the per-thread error text buffer, NUL included.
#define MESHC_ERRMAX 8192

void meshc_set_err(const char *p, size_t n);
// Function pointers, user and state pointers travel through Go as
// uintptr_t: Go never holds them as pointers, so whatever the host stores
// in them cannot confuse the garbage collector.
int32_t meshc_call_create(uintptr_t fn, uintptr_t user, const uint8_t *params, size_t len, uintptr_t *state);
int32_t meshc_call_handle(uintptr_t fn, uintptr_t state, uint64_t ctx, const char *method, const uint8_t *payload,
                          size_t len);
void meshc_call_destroy(uintptr_t fn, uintptr_t state);
void *meshc_malloc(size_t n);

#endif
