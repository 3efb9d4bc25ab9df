package transport

import (
	"errors"
	"log/slog"
	"time"
)

// Handler receives each message delivered on a served address. It is called
// serially for one sender session (so FIFO per sender holds) and concurrently
// across sessions. msg belongs to the handler. A message counts as delivered,
// and is acknowledged to its sender, once Handler returns, so Handler should
// enqueue and return rather than do long work.
type Handler func(msg []byte)

// ContinuingHandler is a Handler that may hand back a Continuation: work
// to run on the delivering goroutine once the message counts as delivered.
// It saves a goroutine hand-off (the wake-up costs more than a small
// message) when the handler's work is to start something, such as an
// idle actor's loop.
type ContinuingHandler func(msg []byte) Continuation

// Continuation is work left by a ContinuingHandler. It runs on the reader
// while messages arrive in quick succession, and on a goroutine of its
// own otherwise. It may block: if it runs longer than a short grace
// period, the connection's later messages are delivered from another
// goroutine meanwhile, so they may reach the handler while the
// continuation still runs.
type Continuation interface{ Continue() }

// Dispatcher is implemented by continuations that know a better place to
// run than a new goroutine, when the reader does not run them itself (for
// example a pool of goroutines whose stacks have already grown).
type Dispatcher interface{ Dispatch() }

// Options configures Serve and Dial. The zero value (or nil) uses the defaults.
type Options struct {
	// MaxFrameSize bounds one message's encoded size (default 1 GiB).
	// A larger message is refused alone; the channel keeps working.
	MaxFrameSize int
	// DeliveryTimeout bounds how long a posted message may wait for its
	// acknowledgement before it is returned as undeliverable (default 30s,
	// at most MaxDeliveryTimeout).
	DeliveryTimeout time.Duration
	// KeepaliveInterval is how often an idle connection is probed; a
	// connection silent for 3 intervals is considered dead (default 5s).
	KeepaliveInterval time.Duration
	// OnUndeliverable receives every posted message that could not be
	// delivered, with the reason (an *UndeliverableError). It is called from
	// the sender's goroutines, never while a lock is held, and must not block.
	OnUndeliverable func(msg []byte, err error)
	// Logger receives connection-level diagnostics (default slog.Default()).
	Logger *slog.Logger

	// Knobs for tests; zero means the default.
	maxBackoff    time.Duration // reconnect backoff cap (default 1s)
	sessionExpiry time.Duration // server forgets sessions idle this long (default 10m)
	handshake     time.Duration // bound on a server's whole handshake (default 10s)
	alwaysBusy    bool          // run every continuation on the reader
}

// Defaults for the zero Options.
const (
	DefaultDeliveryTimeout   = 30 * time.Second
	DefaultKeepaliveInterval = 5 * time.Second
	// MaxDeliveryTimeout keeps a message's retries within the receiver's
	// memory of its session (10 minutes idle): a message resent after the
	// receiver forgot that it had delivered it would arrive twice.
	MaxDeliveryTimeout = 9 * time.Minute

	defaultMaxBackoff    = time.Second
	minBackoff           = 10 * time.Millisecond
	defaultSessionExpiry = 10 * time.Minute
	handshakeTimeout     = 10 * time.Second
	maxDialTimeout       = 10 * time.Second
	// Besides acking on a ping, the server acks every ackEvery messages or
	// ackBytes of payload, and at most ackDelay after a delivery.
	ackEvery = 512
	ackBytes = 256 << 10
	ackDelay = 250 * time.Millisecond
	// maxFlushOnClose bounds how long Sender.Close tries to deliver what is
	// still queued.
	maxFlushOnClose = time.Second
	// maxFinalFlush bounds a closing server connection's last writes (an
	// ack, the close frame) to a peer that does not read.
	maxFinalFlush = time.Second
)

// config is Options with defaults applied.
type config struct {
	maxFrame        int
	deliveryTimeout time.Duration
	keepalive       time.Duration
	onUndeliverable func(msg []byte, err error)
	log             *slog.Logger
	maxBackoff      time.Duration
	sessionExpiry   time.Duration
	handshake       time.Duration
	alwaysBusy      bool
}

func (o *Options) config() config {
	var c config
	if o != nil {
		c = config{o.MaxFrameSize, o.DeliveryTimeout, o.KeepaliveInterval, o.OnUndeliverable, o.Logger, o.maxBackoff, o.sessionExpiry, o.handshake, o.alwaysBusy}
	}
	if c.maxFrame <= 0 || c.maxFrame > DefaultMaxFrameSize {
		// The header's 32-bit length also holds the 8-byte seq, so 1 GiB is
		// both the default and the ceiling.
		c.maxFrame = DefaultMaxFrameSize
	}
	if c.deliveryTimeout <= 0 {
		c.deliveryTimeout = DefaultDeliveryTimeout
	}
	c.deliveryTimeout = min(c.deliveryTimeout, MaxDeliveryTimeout)
	if c.keepalive <= 0 {
		c.keepalive = DefaultKeepaliveInterval
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	if c.maxBackoff <= 0 {
		c.maxBackoff = defaultMaxBackoff
	}
	if c.sessionExpiry <= 0 {
		c.sessionExpiry = defaultSessionExpiry
	}
	if c.handshake <= 0 {
		c.handshake = handshakeTimeout
	}
	return c
}

// Sentinel reasons carried by UndeliverableError and returned by Send.
var (
	ErrClosed           = errors.New("transport: channel closed")
	ErrDeliveryTimeout  = errors.New("transport: message not acknowledged within the delivery timeout")
	ErrFrameTooLarge    = errors.New("transport: message larger than the maximum frame size")
	ErrReceiverReplaced = errors.New("transport: receiving process was replaced; unacknowledged messages were not delivered")
	ErrVersion          = errors.New("transport: peer speaks another protocol version")
)

// UndeliverableError says why one message was not delivered.
type UndeliverableError struct {
	Addr   Addr
	Reason error
}

func (e *UndeliverableError) Error() string {
	return "transport: undeliverable to " + e.Addr.String() + ": " + e.Reason.Error()
}

func (e *UndeliverableError) Unwrap() error { return e.Reason }
