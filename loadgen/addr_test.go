package loadgen

import "testing"

// TestAddrFor: one address serves every connection; several are taken in
// turn.
func TestAddrFor(t *testing.T) {
	for _, c := range []struct {
		addr string
		i    int
		want string
	}{
		{"127.0.0.1:1", 5, "127.0.0.1:1"},
		{"127.0.0.1:1,127.0.0.1:2", 0, "127.0.0.1:1"},
		{"127.0.0.1:1,127.0.0.1:2", 1, "127.0.0.1:2"},
		{"127.0.0.1:1, 127.0.0.1:2,127.0.0.1:3", 4, "127.0.0.1:2"},
	} {
		if got := addrFor(c.addr, c.i); got != c.want {
			t.Errorf("addrFor(%q, %d) = %q; want %q", c.addr, c.i, got, c.want)
		}
	}
}
