package mesh

import "log/slog"

// logger is the mesh layer's logger; it follows slog's default so that a
// program (or a foreign host) configures logging in one place.
func logger() *slog.Logger { return slog.Default().With("layer", "mesh") }
