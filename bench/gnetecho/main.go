// Command gnetecho is the raw gnet v2 echo baseline for herald's echo demo:
// OnTraffic hands back whatever arrived, `buf, _ := c.Next(-1); c.Write(buf)`.
//
//	go run ./bench/gnetecho -addr 127.0.0.1:7100
package main

import (
	"flag"

	"github.com/herald-mmo/herald/bench/internal/benchsrv"
	"github.com/panjf2000/gnet/v2"
)

type server struct{ *benchsrv.Booter }

var _ gnet.EventHandler = (*server)(nil)

func (server) OnTraffic(c gnet.Conn) gnet.Action {
	buf, _ := c.Next(-1)
	_, _ = c.Write(buf)
	return gnet.None
}

func main() {
	f := benchsrv.Register("127.0.0.1:7100")
	flag.Parse()
	b := benchsrv.NewBooter()
	if err := benchsrv.RunGnet(server{b}, b, f); err != nil {
		benchsrv.Fatal(err)
	}
}
