// Command bootstrap is the per-rank child process that allocators start.
// It runs whatever HYPERACTOR_MESH_BOOTSTRAP_MODE asks for; see
// mesh.BootstrapMain.
package main

import (
	"os"

	"github.com/actormesh/actormesh/mesh"
	// Actor types that meshes spawn by name must be registered in this
	// binary: the packages that register them are linked in here (test
	// actors included, as Monarch's bootstrap binary does).
	_ "github.com/actormesh/actormesh/mesh/testactor"
)

func main() { os.Exit(mesh.BootstrapMain()) }
