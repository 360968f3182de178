package sendbuffer

import (
	"fmt"
	"math/bits"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/herald-mmo/herald/internal/lockorder"
)

// Size classes: 64 B, 256 B, 1 KiB, 4 KiB, 16 KiB, 64 KiB, 256 KiB, 1 MiB.
// Each class has its own pool; a request larger than the largest class gets
// an unpooled buffer that the garbage collector reclaims after Release.
const (
	minClassShift = 6 // 64 B
	classStep     = 2 // each class is 4x the previous
	numClasses    = 8
	// MaxPooled is the largest capacity served from a pool.
	MaxPooled = 1 << (minClassShift + classStep*(numClasses-1))
	// MaxSize is the largest a Buffer may grow to.
	MaxSize = 64 << 20
)

// poison fills released memory in debug mode, so a reader holding a stale
// slice sees an obvious pattern instead of someone else's frame.
const poison = 0xDE

var pools [numClasses]sync.Pool

// Buffer is a reference-counted byte buffer. The zero value is not usable;
// get one from Get.
//
// Retain and Release are safe from any goroutine. Writing (Write, Extend,
// Reset) is for the single owner filling the buffer before it is shared:
// once a second reference exists the contents must be treated as read-only.
type Buffer struct {
	refs  atomic.Int32 // every reference; the buffer is recycled at zero
	owned atomic.Int32 // the references content code holds (not herald's queues)
	buf   []byte       // len is the filled part; cap is the class size
	class int8         // pool index, or -1 when unpooled
	key   uint64       // conflation key, 0 for none
	stack string       // debug mode: where Get was called

	// twin is the form derived from buf (Twin), built once and released
	// with the buffer's last reference. twinMu serialises its building;
	// it is a plain sync.Mutex because the lock-order checker keeps a
	// record per mutex instance and buffers are many.
	twin   atomic.Pointer[Buffer]
	twinMu sync.Mutex
}

var (
	live      atomic.Int64
	liveBytes atomic.Int64 // capacity of the live buffers
	debug     atomic.Bool

	trackMu lockorder.Mutex
	tracked = map[*Buffer]struct{}{} // debug mode: live buffers
)

// SetDebug turns debug mode on or off for buffers obtained afterwards. See
// the package documentation. Tests call SetDebug(true) in TestMain.
func SetDebug(on bool) { debug.Store(on) }

// Live reports how many buffers have been obtained from Get and not yet
// released by their last holder.
func Live() int64 { return live.Load() }

// LiveBytes reports the capacity, in bytes, of the buffers Live counts: the
// memory they hold.
func LiveBytes() int64 { return liveBytes.Load() }

// classFor returns the pool index for a capacity of n bytes, or -1 when n is
// larger than MaxPooled.
func classFor(n int) int {
	if n <= 1<<minClassShift {
		return 0
	}
	if n > MaxPooled {
		return -1
	}
	// Round the bit length up to the next class boundary.
	shift := bits.Len(uint(n-1)) - minClassShift
	return (shift + classStep - 1) / classStep
}

func classSize(c int) int { return 1 << (minClassShift + classStep*c) }

// Get returns an empty Buffer with capacity for at least n bytes, holding one
// reference owned by the caller. Get never fails; n beyond MaxPooled yields an
// unpooled buffer.
func Get(n int) *Buffer {
	b := get(n)
	b.refs.Store(1)
	b.owned.Store(1)
	b.key = 0
	live.Add(1)
	liveBytes.Add(int64(cap(b.buf)))
	if debug.Load() {
		b.stack = callers()
		trackMu.Lock()
		tracked[b] = struct{}{}
		trackMu.Unlock()
	}
	return b
}

// Copy returns a new Buffer holding a copy of p, with one reference owned by
// the caller: the way to keep a received frame beyond the handler call.
func Copy(p []byte) *Buffer {
	b := Get(len(p))
	b.buf = append(b.buf, p...)
	return b
}

// get takes a buffer of the right class without touching counts.
func get(n int) *Buffer {
	c := classFor(n)
	if c < 0 {
		return &Buffer{buf: make([]byte, 0, n), class: -1}
	}
	if !debug.Load() {
		if b, ok := pools[c].Get().(*Buffer); ok {
			return b
		}
	}
	return &Buffer{buf: make([]byte, 0, classSize(c)), class: int8(c)}
}

// Retain adds one reference for a new holder. It panics if the buffer has
// already been released: a holder must retain while it still has a reference.
func (b *Buffer) Retain() { b.RetainN(1) }

// RetainN adds n references at once.
func (b *Buffer) RetainN(n int) {
	if n <= 0 {
		return
	}
	b.share(n)
	b.owned.Add(int32(n))
}

// Release drops one of the caller's references. The last Release returns
// the buffer to its pool; the buffer and every slice taken from Bytes must
// not be used after the caller's Release. It panics, changing nothing, when
// the caller holds no reference: more Releases than Get and Retains, or a
// Release of the reference handed to Send or a broadcast (that one is
// herald's now).
func (b *Buffer) Release() {
	if b.owned.Add(-1) < 0 {
		b.owned.Add(1)
		panic("herald/sendbuffer: Release of a reference the caller does not hold (double Release, or Release after Send)" + b.origin())
	}
	b.drop()
}

// Handoff turns the caller's reference into n references held by queues:
// Session.Send hands off one, a broadcast one per event loop. It panics,
// changing nothing, when the caller holds no reference (a buffer sent twice
// without Retain, or sent after Release). With n == 0 it is a Release.
// Queue references are dropped with Drop, never Release.
func (b *Buffer) Handoff(n int) {
	if b.owned.Add(-1) < 0 {
		b.owned.Add(1)
		panic("herald/sendbuffer: Send of a buffer the caller does not hold (sent twice without Retain, or after Release)" + b.origin())
	}
	switch {
	case n > 1:
		b.share(n - 1)
	case n == 0:
		b.drop()
	}
}

// Share adds n queue references to a buffer that a queue already holds
// (a slow session keeping a frame another queue drained). It panics if the
// buffer has been released. Drop each one.
func (b *Buffer) Share(n int) { b.share(n) }

// Drop drops one queue reference (see Handoff and Share). The last
// reference returns the buffer to its pool. Dropping more queue references
// than exist panics.
func (b *Buffer) Drop() { b.drop() }

func (b *Buffer) share(n int) {
	if b.refs.Add(int32(n)) <= int32(n) {
		b.refs.Add(-int32(n)) // leave it released for the next misuse check
		panic("herald/sendbuffer: Retain of a released buffer" + b.origin())
	}
}

func (b *Buffer) drop() {
	n := b.refs.Add(-1)
	if n > 0 {
		return
	}
	if n < 0 {
		b.refs.Add(1)
		panic("herald/sendbuffer: double Release" + b.origin())
	}
	b.dropTwin()
	live.Add(-1)
	liveBytes.Add(-int64(cap(b.buf)))
	if b.stack != "" || debug.Load() {
		trackMu.Lock()
		delete(tracked, b)
		trackMu.Unlock()
		// Poison and keep out of the pool: a stale reader sees 0xDE bytes
		// and a stale Release or Bytes panics, since refs stays at zero.
		full := b.buf[:cap(b.buf)]
		for i := range full {
			full[i] = poison
		}
		return
	}
	if b.class >= 0 {
		b.buf = b.buf[:0]
		pools[b.class].Put(b)
	}
}

// SetKey gives the frame a conflation key (for example entity id and update
// kind): while a slow session still queues a frame with the same non-zero
// key, the newer frame replaces it there, so the session gets the latest
// state instead of every intermediate one. Set it before the buffer is sent.
func (b *Buffer) SetKey(key uint64) { b.key = key }

// Key returns the conflation key set by SetKey, or 0.
func (b *Buffer) Key() uint64 { return b.key }

// Refs reports the current reference count. It is meant for tests and
// diagnostics: the value may change as soon as it is read.
func (b *Buffer) Refs() int { return int(b.refs.Load()) }

// Bytes returns the filled part of the buffer. The slice stays valid until
// the caller's reference is released; it must not be modified once the
// buffer is shared.
func (b *Buffer) Bytes() []byte {
	b.check()
	return b.buf
}

// Len reports the number of filled bytes.
func (b *Buffer) Len() int { return len(b.buf) }

// Cap reports the capacity available without growing.
func (b *Buffer) Cap() int { return cap(b.buf) }

// Reset empties the buffer, keeping its capacity.
func (b *Buffer) Reset() {
	b.modify()
	b.buf = b.buf[:0]
}

// Twin returns the buffer derived from b's bytes by build, for example
// the compressed form of the frame b holds: build runs on the first call
// for b, and every later call, from any goroutine, returns the buffer it
// built (a call racing the first waits for it). So a form that many
// recipients share is computed once per frame, whichever goroutine needs
// it first.
//
// The twin belongs to b: it stays valid while the caller holds a
// reference to b, and b's last reference releases it (a Write, Extend or
// Reset of b drops it too: it would be stale). Do not Release, send or
// modify it. build gets b's filled bytes and returns a buffer from Get or
// Copy holding its one reference, never nil. Every caller must pass a
// build that derives the same form: the first one wins.
func (b *Buffer) Twin(build func(p []byte) *Buffer) *Buffer {
	if t := b.twin.Load(); t != nil {
		return t
	}
	return b.buildTwin(build)
}

func (b *Buffer) buildTwin(build func([]byte) *Buffer) *Buffer {
	b.check()
	b.twinMu.Lock()
	defer b.twinMu.Unlock()
	t := b.twin.Load()
	if t == nil {
		t = build(b.buf)
		b.twin.Store(t)
	}
	return t
}

// modify is check for a method that changes the bytes: a twin derived
// from them is stale and goes.
func (b *Buffer) modify() {
	b.check()
	b.dropTwin()
}

// dropTwin releases b's twin, if any: when b's bytes change, or with b's
// last reference (then no other holder can be reading it).
func (b *Buffer) dropTwin() {
	if t := b.twin.Load(); t != nil {
		b.twin.Store(nil)
		t.Release()
	}
}

// AvailableBuffer returns an empty slice whose capacity is the buffer's
// unused space, for append-style encoders. Passing the appended result to
// Write keeps the bytes in place without copying (the pattern of
// bufio.Writer.AvailableBuffer).
func (b *Buffer) AvailableBuffer() []byte {
	b.check()
	return b.buf[len(b.buf):len(b.buf)]
}

// Write appends p, growing into a larger size class when needed. It returns
// ErrTooLarge, writing nothing, if the result would exceed MaxSize. When p
// was appended in place to AvailableBuffer's slice no bytes are copied.
func (b *Buffer) Write(p []byte) (int, error) {
	b.modify()
	n := len(b.buf)
	if len(p) == 0 {
		return 0, nil
	}
	if len(p) <= cap(b.buf)-n && unsafe.SliceData(p) == unsafe.SliceData(b.buf[n:cap(b.buf)]) {
		b.buf = b.buf[:n+len(p)]
		return len(p), nil
	}
	dst, err := b.Extend(len(p))
	if err != nil {
		return 0, err
	}
	copy(dst, p)
	return len(p), nil
}

// Extend grows the filled part by n bytes and returns those n bytes for the
// caller to fill in place. It returns ErrTooLarge if the buffer would exceed
// MaxSize.
func (b *Buffer) Extend(n int) ([]byte, error) {
	b.modify()
	l := len(b.buf)
	if n < 0 || l+n > MaxSize {
		return nil, ErrTooLarge
	}
	if l+n > cap(b.buf) {
		b.grow(l + n)
	}
	b.buf = b.buf[:l+n]
	return b.buf[l : l+n], nil
}

// grow moves the contents into a backing array of at least n bytes. The old
// array goes back to its pool inside a spare Buffer shell.
func (b *Buffer) grow(n int) {
	if want := 2 * cap(b.buf); n < want {
		n = want
	}
	nb := get(n)
	nb.buf = append(nb.buf[:0], b.buf...)
	b.buf, nb.buf = nb.buf, b.buf
	liveBytes.Add(int64(cap(b.buf) - cap(nb.buf)))
	b.class, nb.class = nb.class, b.class
	if nb.class >= 0 && !debug.Load() {
		nb.buf = nb.buf[:0]
		pools[nb.class].Put(nb)
	}
}

// check panics when a released buffer is used. It is reliable in debug
// mode, where released buffers are never recycled.
func (b *Buffer) check() {
	if b.refs.Load() <= 0 {
		panic("herald/sendbuffer: use of a released buffer" + b.origin())
	}
}

func (b *Buffer) origin() string {
	if b.stack == "" {
		return " (SetDebug(true) records where it was allocated)"
	}
	return "; allocated at:\n" + b.stack
}

func callers() string {
	var pcs [16]uintptr
	n := runtime.Callers(3, pcs[:])
	frames := runtime.CallersFrames(pcs[:n])
	var sb strings.Builder
	for {
		f, more := frames.Next()
		fmt.Fprintf(&sb, "\t%s\n\t\t%s:%d\n", f.Function, f.File, f.Line)
		if !more {
			break
		}
	}
	return sb.String()
}

// Leaks describes every live buffer allocated while debug mode was on, with
// the stack that allocated it, or returns "" when there are none. Identical
// stacks are reported once with a count.
func Leaks() string {
	trackMu.Lock()
	counts := map[string]int{}
	for b := range tracked {
		counts[b.stack]++
	}
	trackMu.Unlock()
	if len(counts) == 0 {
		return ""
	}
	stacks := make([]string, 0, len(counts))
	for s := range counts {
		stacks = append(stacks, s)
	}
	sort.Strings(stacks)
	var sb strings.Builder
	for _, s := range stacks {
		fmt.Fprintf(&sb, "%d live buffer(s) allocated at:\n%s", counts[s], s)
	}
	return sb.String()
}
