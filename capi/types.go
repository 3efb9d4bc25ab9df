package main

import "strings"

// reservedPrefixes name the runtime's own types, which the C ABI neither
// spawns nor lets foreign code replace.
var reservedPrefixes = []string{"mesh.", "alloc.", "actormesh.", "capi."}

func reservedType(name string) bool {
	for _, p := range reservedPrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}
