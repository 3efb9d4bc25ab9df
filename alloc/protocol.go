package alloc

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/actormesh/actormesh/core"
	"github.com/actormesh/actormesh/transport"
)

// Environment variables of the bootstrap protocol. The HYPERACTOR_ names
// are Monarch's, so that tooling written for it keeps working.
const (
	EnvBootstrapAddr      = "HYPERACTOR_MESH_BOOTSTRAP_ADDR"
	EnvIndex              = "HYPERACTOR_MESH_INDEX"
	EnvBootstrapMode      = "HYPERACTOR_MESH_BOOTSTRAP_MODE"
	EnvProcessName        = "HYPERACTOR_PROCESS_NAME"
	EnvEnablePdeathsig    = "HYPERACTOR_MESH_BOOTSTRAP_ENABLE_PDEATHSIG"
	EnvProcessExitTimeout = "HYPERACTOR_PROCESS_EXIT_TIMEOUT"
	// EnvParentPID carries the allocator's pid so that a child can tell
	// whether its parent died before it asked for PR_SET_PDEATHSIG.
	EnvParentPID = "ACTORMESH_PARENT_PID"
	// EnvHeartbeatInterval is how often a v0 child proves its parent is
	// alive (default 1s); EnvHeartbeatTimeout how long it waits for an
	// answer before it concludes the parent is gone and exits (default 5s).
	EnvHeartbeatInterval = "HYPERACTOR_MESH_BOOTSTRAP_HEARTBEAT_INTERVAL"
	EnvHeartbeatTimeout  = "HYPERACTOR_MESH_BOOTSTRAP_HEARTBEAT_TIMEOUT"
	// EnvStartTimeout bounds how long a v0 child waits for StartProc after
	// its Hello (default 30s).
	EnvStartTimeout = "HYPERACTOR_MESH_BOOTSTRAP_START_TIMEOUT"
	// EnvHelloOnly selects the benchmark baseline child: dial back, say
	// hello, wait. Not part of the protocol.
	EnvHelloOnly = "ACTORMESH_BOOTSTRAP_HELLO_ONLY"
)

// Defaults of the knobs above.
const (
	DefaultProcessExitTimeout = 10 * time.Second
	DefaultHelloTimeout       = 30 * time.Second
	DefaultHeartbeatInterval  = time.Second
	DefaultHeartbeatTimeout   = 5 * time.Second
	DefaultStartTimeout       = 30 * time.Second
)

// Well-known names on both ends of the handshake. Every allocation and
// every child serves a fresh address, so fixed names cannot collide.
const (
	bootstrapProcName = "alloc_bootstrap"
	bootstrapActor    = "bootstrap"
	childCtlProcName  = "v0_child"
	childCtlActor     = "bootstrap"
)

func bootstrapActorID(addr transport.Addr) core.ActorID {
	return core.ProcID{Addr: addr, Name: bootstrapProcName}.ActorID(bootstrapActor, 0)
}

func childCtlActorID(addr transport.Addr) core.ActorID {
	return core.ProcID{Addr: addr, Name: childCtlProcName}.ActorID(childCtlActor, 0)
}

// The v0 handshake. Child → allocator: Hello, StartedProc, Heartbeat.
// Allocator → child: StartProc, StopAndExit, Exit.
type (
	// Hello is the child's first message: it serves its control channel at Addr.
	Hello struct {
		Index int
		Addr  transport.Addr
	}
	// StartProc asks the child to start its proc. ProcID.Name is the name
	// the allocator chose; ProcID.Addr is the child's control address, as
	// in Monarch's v0. Since a proc serves its own address, the child binds
	// a fresh one of Transport and reports the full id in StartedProc.
	StartProc struct {
		ProcID    core.ProcID
		Transport transport.Transport
	}
	// StartedProc says the proc is up with its agent.
	StartedProc struct {
		Index  int
		ProcID core.ProcID
		Agent  core.ActorID
		Addr   transport.Addr
	}
	// Heartbeat proves to the child that its allocator is alive: the
	// allocator answers on Ack at once.
	Heartbeat struct {
		Index int
		Ack   core.PortRef[bool]
	}
	// StopAndExit asks the child to stop its procs gracefully, then exit with Code.
	StopAndExit struct{ Code int }
	// Exit asks the child to exit with Code at once.
	Exit struct{ Code int }
)

func init() {
	core.RegisterMessage[Hello]("alloc.Hello")
	core.RegisterMessage[StartProc]("alloc.StartProc")
	core.RegisterMessage[StartedProc]("alloc.StartedProc")
	core.RegisterMessage[Heartbeat]("alloc.Heartbeat")
	core.RegisterMessage[StopAndExit]("alloc.StopAndExit")
	core.RegisterMessage[Exit]("alloc.Exit")
}

// BootstrapMode is the payload of HYPERACTOR_MESH_BOOTSTRAP_MODE: exactly
// one of its fields is set. It is encoded as externally tagged JSON
// ({"V0ProcMesh":{"config":{}}}), then base64 (standard alphabet), like
// Monarch's Bootstrap enum.
type BootstrapMode struct {
	V0ProcMesh *V0ProcMeshMode
	Proc       *ProcMode
	Host       *HostMode
}

// V0ProcMeshMode is the child of a ProcessAllocator (the default when the
// variable is absent).
type V0ProcMeshMode struct {
	// Config holds the parent's settings by environment variable name; the
	// child's own environment takes precedence.
	Config map[string]string `json:"config"`
}

// ProcMode is a proc started by a host.
type ProcMode struct {
	// ProcID is the proc's id in text form (core.ParseProcID).
	ProcID       string         `json:"proc_id"`
	BackendAddr  transport.Addr `json:"backend_addr"`
	CallbackAddr transport.Addr `json:"callback_addr"`
	// HostAgent is the text form of the host agent's ActorID, which the
	// proc reports to when it is ready.
	HostAgent string `json:"host_agent,omitempty"`
	// SocketDirPath is where the proc serves unix:<dir>/<name>.
	SocketDirPath string            `json:"socket_dir_path,omitempty"`
	Config        map[string]string `json:"config,omitempty"`
}

// HostMode is a host process that spawns procs on request.
type HostMode struct {
	Addr transport.Addr `json:"addr"`
	// Command starts the host's procs; nil means this executable.
	Command        *BootstrapCommand `json:"command,omitempty"`
	Config         map[string]string `json:"config,omitempty"`
	ExitOnShutdown bool              `json:"exit_on_shutdown"`
}

// BootstrapCommand is a serialisable command line.
type BootstrapCommand struct {
	Program string            `json:"program"`
	Arg0    string            `json:"arg0,omitempty"`
	Args    []string          `json:"args"`
	Env     map[string]string `json:"env,omitempty"`
}

// Name is the variant's tag.
func (m BootstrapMode) Name() string {
	switch {
	case m.V0ProcMesh != nil:
		return "V0ProcMesh"
	case m.Proc != nil:
		return "Proc"
	case m.Host != nil:
		return "Host"
	}
	return ""
}

// MarshalJSON writes the externally tagged form.
func (m BootstrapMode) MarshalJSON() ([]byte, error) {
	var v any
	switch m.Name() {
	case "V0ProcMesh":
		v = m.V0ProcMesh
	case "Proc":
		v = m.Proc
	case "Host":
		v = m.Host
	default:
		return nil, fmt.Errorf("alloc: bootstrap mode has no variant set")
	}
	return json.Marshal(map[string]any{m.Name(): v})
}

// UnmarshalJSON reads the externally tagged form.
func (m *BootstrapMode) UnmarshalJSON(b []byte) error {
	var tagged map[string]json.RawMessage
	if err := json.Unmarshal(b, &tagged); err != nil {
		return fmt.Errorf("alloc: bootstrap mode: want a JSON object with one variant: %w", err)
	}
	if len(tagged) != 1 {
		return fmt.Errorf("alloc: bootstrap mode: want exactly one variant, got %d", len(tagged))
	}
	*m = BootstrapMode{}
	for tag, raw := range tagged {
		var dst any
		switch tag {
		case "V0ProcMesh":
			m.V0ProcMesh = &V0ProcMeshMode{}
			dst = m.V0ProcMesh
		case "Proc":
			m.Proc = &ProcMode{}
			dst = m.Proc
		case "Host":
			m.Host = &HostMode{}
			dst = m.Host
		default:
			return fmt.Errorf("alloc: bootstrap mode: unknown variant %q (want V0ProcMesh, Proc or Host)", tag)
		}
		if err := json.Unmarshal(raw, dst); err != nil {
			return fmt.Errorf("alloc: bootstrap mode %s: %w", tag, err)
		}
	}
	return nil
}

// Encode gives the value of HYPERACTOR_MESH_BOOTSTRAP_MODE.
func (m BootstrapMode) Encode() (string, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

// DecodeBootstrapMode parses a HYPERACTOR_MESH_BOOTSTRAP_MODE value.
func DecodeBootstrapMode(s string) (BootstrapMode, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return BootstrapMode{}, fmt.Errorf("alloc: %s is not base64: %w", EnvBootstrapMode, err)
	}
	var m BootstrapMode
	if err := json.Unmarshal(b, &m); err != nil {
		return BootstrapMode{}, fmt.Errorf("alloc: %s: %w", EnvBootstrapMode, err)
	}
	return m, nil
}

// BootstrapModeFromEnv reads HYPERACTOR_MESH_BOOTSTRAP_MODE; absent means V0ProcMesh.
func BootstrapModeFromEnv() (BootstrapMode, error) {
	s, ok := os.LookupEnv(EnvBootstrapMode)
	if !ok || s == "" {
		return BootstrapMode{V0ProcMesh: &V0ProcMeshMode{}}, nil
	}
	return DecodeBootstrapMode(s)
}

// settings looks up knobs: the process environment first, then the config
// the parent passed in the bootstrap mode.
type settings map[string]string

func (s settings) lookup(key string) (string, bool) {
	if v, ok := os.LookupEnv(key); ok {
		return v, true
	}
	v, ok := s[key]
	return v, ok
}

func (s settings) duration(key string, def time.Duration) (time.Duration, error) {
	v, ok := s.lookup(key)
	if !ok || v == "" {
		return def, nil
	}
	d, err := parseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("alloc: %s=%q: %w", key, v, err)
	}
	return d, nil
}

func (s settings) boolean(key string, def bool) (bool, error) {
	v, ok := s.lookup(key)
	if !ok || v == "" {
		return def, nil
	}
	b, err := strconv.ParseBool(strings.ToLower(v))
	if err != nil {
		return false, fmt.Errorf("alloc: %s=%q: want true or false", key, v)
	}
	return b, nil
}

// parseDuration accepts Go durations ("1.5s") and bare seconds ("10").
func parseDuration(v string) (time.Duration, error) {
	if n, err := strconv.ParseFloat(v, 64); err == nil {
		if n < 0 {
			return 0, fmt.Errorf("negative duration")
		}
		return time.Duration(n * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, err
	}
	if d < 0 {
		return 0, fmt.Errorf("negative duration")
	}
	return d, nil
}

// EnvDuration reads a duration knob from the environment ("1.5s", or bare
// seconds), falling back to def when unset or malformed.
func EnvDuration(key string, def time.Duration) time.Duration {
	d, err := settings(nil).duration(key, def)
	if err != nil {
		return def
	}
	return d
}

// envLookup finds key in a KEY=VALUE list, last one winning as exec does.
func envLookup(env []string, key string) (string, bool) {
	for i := len(env) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(env[i], "="); ok && k == key {
			return v, true
		}
	}
	return "", false
}
