package sendbuffer_test

import (
	"fmt"

	"github.com/herald-mmo/herald/sendbuffer"
)

// A buffer is filled once and shared: each holder takes a reference and
// drops it once; the last Release returns it to its pool.
func Example() {
	before := sendbuffer.Live()
	b := sendbuffer.Get(64)
	_, _ = b.Write([]byte("monster spawned at 12,40"))
	b.Retain() // a second holder
	fmt.Println(string(b.Bytes()), b.Refs())
	b.Release()
	b.Release() // the last reference
	fmt.Println("live:", sendbuffer.Live()-before)
	// Output:
	// monster spawned at 12,40 2
	// live: 0
}
