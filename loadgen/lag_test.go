package loadgen

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// lagPage is a /metrics page whose loop lag histogram has the cumulative
// counts given, for the bounds 0.005, 0.01, 0.25 and +Inf.
func lagPage(counts ...int) string {
	var b strings.Builder
	b.WriteString("# HELP herald_loop_lag_seconds x\n# TYPE herald_loop_lag_seconds histogram\n")
	for i, le := range []string{"0.005", "0.01", "0.25", "+Inf"} {
		fmt.Fprintf(&b, "herald_loop_lag_seconds_bucket{le=%q} %d\n", le, counts[i])
	}
	fmt.Fprintf(&b, "herald_loop_lag_seconds_sum 1.5\nherald_loop_lag_seconds_count %d\nherald_loop_lag_max_seconds 0.3\n", counts[3])
	return b.String()
}

// TestLoopLagWindow: two readings of herald's loop lag histogram give the
// probes between them, those over 10 ms and the bucket of the longest.
func TestLoopLagWindow(t *testing.T) {
	pages := []string{lagPage(10, 12, 12, 12), lagPage(30, 35, 38, 38), lagPage(31, 36, 39, 40), lagPage(31, 36, 39, 40), "# HELP other x\nother 1\n"}
	i := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, pages[i])
		i++
	}))
	defer srv.Close()
	read := func() lagHist {
		t.Helper()
		h, err := readLag(context.Background(), srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	h0, h1, h2, h3 := read(), read(), read(), read()
	for _, c := range []struct {
		name          string
		probes, over  int
		worst         float64
		before, after lagHist
	}{
		{"longest at most 250 ms", 26, 3, 0.25, h0, h1},
		{"one past the last bound", 2, 1, math.Inf(1), h1, h2},
		{"no probe", 0, 0, 0, h2, h3},
	} {
		p, o, w := c.after.since(c.before, 0.01)
		if p != c.probes || o != c.over || w != c.worst {
			t.Errorf("%s: probes %d, over 10 ms %d, worst %v; want %d, %d, %v", c.name, p, o, w, c.probes, c.over, c.worst)
		}
	}
	if _, err := readLag(context.Background(), srv.URL); err == nil {
		t.Error("a page without the histogram read without error")
	}
}
