package mesh

import "github.com/actormesh/actormesh/core"

// MethodCall is a method-style request that any actor can answer, whatever
// language implements it: foreign hosts (C, Python) cannot name Go
// message types, so they call methods with msgpack payloads instead.
type MethodCall struct {
	Method  string
	Payload []byte
	Reply   core.PortRef[MethodReply]
}

// MethodReply answers a MethodCall: a msgpack payload, or an error text.
type MethodReply struct {
	Payload []byte
	Err     string
}

func init() {
	core.RegisterMessage[MethodCall]("mesh.MethodCall")
	core.RegisterMessage[MethodReply]("mesh.MethodReply")
}
