package loadgen_test

import (
	"context"
	"fmt"
	"time"

	"github.com/herald-mmo/herald/loadgen"
)

// RunSelftest measures loadgen's own receive ceiling against an in-process
// blaster; RunFanout, RunEcho and RunPubSub take the same Config against a
// real server. Every frame is verified: a lost, duplicated, reordered or
// corrupted frame is an error, never a figure.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := loadgen.RunSelftest(ctx, loadgen.FanoutConfig{Clients: 4, Messages: 100, Size: 32})
	if err != nil {
		panic(err)
	}
	fmt.Println(res.Mode, res.Received, res.Errors)
	// Output: selftest 1600 0
}
