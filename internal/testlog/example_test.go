package testlog_test

import (
	"fmt"
	"sync"

	"github.com/herald-mmo/herald/internal/testlog"
)

func ExampleBuffer() {
	var logs testlog.Buffer
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() { fmt.Fprint(&logs, "x") })
	}
	wg.Wait()
	fmt.Println(logs.String())
	// Output: xxx
}
