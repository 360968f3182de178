package loadgen

import (
	"io"
	"net"
	"testing"
	"time"
)

func TestRunEchoEpollShortWrites(t *testing.T) {
	// A 4 KiB send buffer and a server that reads late: each 64 KiB
	// message goes out in parts, the rest on EPOLLOUT. Without that the
	// run stalls until the test's context ends.
	testSndBuf = 4096
	defer func() { testSndBuf = 0 }()
	size := MaxPayloadSize
	srv := startServer(t, func(_ *testServer, c net.Conn) {
		buf := make([]byte, size+PacketHeaderLen)
		for {
			time.Sleep(10 * time.Millisecond)
			if _, err := io.ReadFull(c, buf); err != nil {
				return
			}
			if _, err := c.Write(buf); err != nil {
				return
			}
		}
	})
	res, err := RunEcho(testContext(t), EchoConfig{Mode: EchoPingPong, Engine: EngineEpoll, Config: Config{
		Addr: srv.addr(), Clients: 2, Messages: 3, Size: size,
	}})
	if err != nil || res.Received != 6 {
		t.Fatalf("err %v, Received %d; want nil, 6\n%+v", err, res.Received, res)
	}
}
