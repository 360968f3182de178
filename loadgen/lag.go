package loadgen

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// lagMetric is the histogram herald's servers export of how long a probe
// task waited for an event loop (handler/lag.go).
const lagMetric = "herald_loop_lag_seconds_bucket"

// lagHist is one reading of lagMetric: cumulative counts by upper bound,
// ascending, +Inf last.
type lagHist struct {
	le    []float64
	count []float64
}

// readLag scrapes url (a herald server's /metrics) for lagMetric.
func readLag(ctx context.Context, url string) (lagHist, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return lagHist{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return lagHist{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return lagHist{}, fmt.Errorf("loadgen: %s: %s", url, resp.Status)
	}
	var h lagHist
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		// herald_loop_lag_seconds_bucket{le="0.01"} 42
		line, ok := strings.CutPrefix(sc.Text(), lagMetric+`{le="`)
		if !ok {
			continue
		}
		bound, rest, ok := strings.Cut(line, `"} `)
		le, err1 := strconv.ParseFloat(bound, 64) // "+Inf" parses too
		n, err2 := strconv.ParseFloat(strings.TrimSpace(rest), 64)
		if !ok || err1 != nil || err2 != nil {
			return lagHist{}, fmt.Errorf("loadgen: %s: bad line %q", url, sc.Text())
		}
		h.le, h.count = append(h.le, le), append(h.count, n)
	}
	if err := sc.Err(); err != nil {
		return lagHist{}, err
	}
	if len(h.le) == 0 || !math.IsInf(h.le[len(h.le)-1], 1) {
		return lagHist{}, fmt.Errorf("loadgen: %s has no %s histogram", url, lagMetric)
	}
	return h, nil
}

// since returns how many probes h counts that before did not, how many of
// them waited longer than over, and the upper bound of the bucket holding
// the longest (+Inf past the last bound, 0 with no probe).
func (h lagHist) since(before lagHist, over float64) (probes, longer int, worst float64) {
	if len(before.le) != len(h.le) {
		return 0, 0, 0
	}
	d := func(i int) int { return int(h.count[i] - before.count[i]) }
	last := len(h.le) - 1
	probes = d(last)
	for i := range h.le {
		if h.le[i] == over {
			longer = probes - d(i)
		}
		if d(i) < probes && i < last {
			worst = h.le[i+1] // some probe waited longer than h.le[i]
		}
	}
	if probes > 0 && worst == 0 {
		worst = h.le[0]
	}
	return probes, longer, worst
}
