package mesh

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/actormesh/actormesh/core"
)

// A cast names the procs of its tree in a table, one ProcID per line
// (castMsg.Procs). Sent with every cast, the table is most of each hop's
// bytes: 2.5 KB for 64 procs, which costs a gather through 64 procs a
// fifth of its CPU time. So once an actor mesh is spawned, its caster
// installs the table on every proc's comm, and casts then carry only the
// table's key (castMsg.TableKey). The key is the table's digest, so a
// comm never mistakes one table for another, and a proc keeps the tables
// of the few proc meshes it belongs to for as long as it lives.

// castTable is a proc table, parsed.
type castTable struct {
	lines    []string
	procs    []core.ProcID // zero where the line is malformed
	procErrs []error
}

func parseCastTable(raw string) *castTable {
	t := &castTable{}
	if raw == "" {
		return t
	}
	for line := range strings.SplitSeq(strings.TrimSuffix(raw, "\n"), "\n") {
		id, err := core.ParseProcID(line)
		t.lines = append(t.lines, line)
		t.procs = append(t.procs, id)
		t.procErrs = append(t.procErrs, err)
	}
	return t
}

// castTableKey names a table by its contents.
func castTableKey(raw []byte) string {
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:16])
}

// maxCastTables bounds the tables one comm keeps; a proc belongs to one
// proc mesh, so it needs one. Beyond the bound an install is refused and
// its caster goes on sending whole tables.
const maxCastTables = 256

// castTables are the tables installed on one comm.
type castTables struct {
	mu sync.RWMutex
	m  map[string]*castTable
}

func (ts *castTables) get(key string) *castTable {
	ts.mu.RLock()
	defer ts.mu.RUnlock()
	return ts.m[key]
}

func (ts *castTables) install(key string, raw []byte) error {
	if castTableKey(raw) != key {
		return fmt.Errorf("mesh: comm: cast table does not match its key %s", key)
	}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if _, ok := ts.m[key]; ok {
		return nil
	}
	if len(ts.m) >= maxCastTables {
		return fmt.Errorf("mesh: comm: %d cast tables installed already", len(ts.m))
	}
	if ts.m == nil {
		ts.m = map[string]*castTable{}
	}
	ts.m[key] = parseCastTable(string(raw))
	return nil
}

// resolve returns the table of cm: the one it carries, or the installed
// one it names.
func (ts *castTables) resolve(cm *castMsg) (*castTable, error) {
	if len(cm.Procs) > 0 || cm.TableKey == "" {
		return parseCastTable(string(cm.Procs)), nil
	}
	if t := ts.get(cm.TableKey); t != nil {
		return t, nil
	}
	return nil, fmt.Errorf("%w %s", errUnknownCastTable, cm.TableKey)
}

var errUnknownCastTable = errors.New("mesh: comm: no cast table installed with key")

// installCastTable asks a comm to keep a table; the reply is "" once it
// does, or why it will not.
type installCastTable struct {
	Key   string
	Procs []byte
	Reply core.PortRef[string]
}

const installCastTableType = "mesh.InstallCastTable"

func init() { core.RegisterMessage[installCastTable](installCastTableType) }

func (ts *castTables) handleInstall(s core.Sender, m installCastTable) error {
	reply := ""
	if err := ts.install(m.Key, m.Procs); err != nil {
		reply = err.Error()
	}
	return m.Reply.Send(s, reply)
}

// castTableInstall is a proc mesh's table and whether every live proc has
// it installed.
type castTableInstall struct {
	raw        []byte
	key        string
	installing atomic.Bool // one install at a time
	installed  atomic.Bool
}

// installTimeout bounds the wait for an install's answers once the
// actors have spawned. Each proc's comm answers the install before its
// agent answers the spawn, on the same channel, so the answers are in by
// then unless a proc died meanwhile; and an install only saves bytes, so
// it is not worth a long wait.
const installTimeout = time.Second

// startInstall sends the table to the comm of every live proc of pm,
// unless it is installed or being installed; until it is, casts carry the
// whole table. The caller must end the returned install with wait or
// abandon.
func (ti *castTableInstall) startInstall(inst *core.Instance, pm *ProcMesh) *pendingInstall {
	if ti.installed.Load() || !ti.installing.CompareAndSwap(false, true) {
		return &pendingInstall{} // nothing to wait for
	}
	port, rx := core.OpenPort[string](inst)
	p := &pendingInstall{ti: ti, mesh: pm.name, rx: rx}
	dead := pm.health.deadProcs()
	for rank, proc := range pm.procs {
		if dead[rank] {
			continue // a dead proc forwards no cast
		}
		msg := installCastTable{Key: ti.key, Procs: ti.raw, Reply: port.Bind()}
		if p.sendErr = commRef(proc.id).Send(inst, msg); p.sendErr != nil {
			break
		}
		p.want++
	}
	return p
}

// pendingInstall is an install whose answers are still to come; its zero
// value is one that was not started.
type pendingInstall struct {
	ti      *castTableInstall
	mesh    string
	rx      *core.PortReceiver[string]
	want    int
	sendErr error
}

// wait collects the comms' answers, within installTimeout, and marks the
// table installed if every comm took it.
func (p *pendingInstall) wait(ctx context.Context) error {
	if p.ti == nil {
		return nil
	}
	defer p.abandon()
	if p.sendErr != nil {
		return p.sendErr
	}
	ctx, cancel := context.WithTimeout(ctx, installTimeout)
	defer cancel()
	for range p.want {
		refusal, err := p.rx.Recv(ctx)
		if err != nil {
			return fmt.Errorf("mesh: installing the cast table of %q: %w", p.mesh, err)
		}
		if refusal != "" {
			return errors.New(refusal)
		}
	}
	p.ti.installed.Store(true)
	return nil
}

// abandon gives up on the answers: casts keep carrying the table, and a
// later spawn may install it.
func (p *pendingInstall) abandon() {
	if p.ti == nil {
		return
	}
	p.rx.Close()
	p.ti.installing.Store(false)
}
