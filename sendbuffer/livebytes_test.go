package sendbuffer_test

import (
	"testing"

	"github.com/herald-mmo/herald/sendbuffer"
)

// TestLiveBytes: LiveBytes follows the capacity of the live buffers through
// Get, growth into a larger class, a second reference and the last Release.
func TestLiveBytes(t *testing.T) {
	base := sendbuffer.LiveBytes()
	a := sendbuffer.Get(10) // 64-byte class
	b := sendbuffer.Get(1000)
	if got, want := sendbuffer.LiveBytes()-base, int64(a.Cap()+b.Cap()); got != want {
		t.Fatalf("after Get: %d live bytes; want %d", got, want)
	}
	if _, err := a.Write(make([]byte, 300)); err != nil { // grows a past 64 bytes
		t.Fatal(err)
	}
	if a.Cap() < 300 {
		t.Fatalf("cap %d after a 300-byte write", a.Cap())
	}
	if got, want := sendbuffer.LiveBytes()-base, int64(a.Cap()+b.Cap()); got != want {
		t.Fatalf("after growth: %d live bytes; want %d", got, want)
	}
	b.Retain()
	b.Release()
	if got, want := sendbuffer.LiveBytes()-base, int64(a.Cap()+b.Cap()); got != want {
		t.Fatalf("with b still referenced: %d live bytes; want %d", got, want)
	}
	a.Release()
	b.Release()
	if got := sendbuffer.LiveBytes() - base; got != 0 {
		t.Fatalf("after the last Release: %d live bytes; want 0", got)
	}
}
