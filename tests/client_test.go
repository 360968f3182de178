package tests

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// packetClient speaks the packet codec ([size u16 LE][id u16 LE][payload])
// from a test goroutine.
type packetClient struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func dialPacket(t *testing.T, addr string) *packetClient {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &packetClient{t: t, conn: conn, r: bufio.NewReader(conn)}
}

func packetFrame(id uint16, payload []byte) []byte {
	f := binary.LittleEndian.AppendUint16(nil, uint16(4+len(payload)))
	f = binary.LittleEndian.AppendUint16(f, id)
	return append(f, payload...)
}

func (c *packetClient) send(id uint16, payload []byte) {
	c.t.Helper()
	if _, err := c.conn.Write(packetFrame(id, payload)); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// recv reads one frame, failing the test after d.
func (c *packetClient) recv(d time.Duration) (id uint16, payload []byte) {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(d))
	var hdr [4]byte
	if _, err := io.ReadFull(c.r, hdr[:]); err != nil {
		c.t.Fatalf("recv header: %v", err)
	}
	size := int(binary.LittleEndian.Uint16(hdr[:]))
	payload = make([]byte, size-4)
	if _, err := io.ReadFull(c.r, payload); err != nil {
		c.t.Fatalf("recv payload: %v", err)
	}
	return binary.LittleEndian.Uint16(hdr[2:]), payload
}

// expectClosed fails the test unless the server closes the connection within d.
func (c *packetClient) expectClosed(d time.Duration) {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c.r)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		c.t.Fatalf("server did not close the connection within %v", d)
	}
}
