//go:build race

package tests

// raceEnabled is true in the race detector's pass, which skips the C ABI
// tests (see buildLib).
const raceEnabled = true
