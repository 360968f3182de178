package codec_test

import (
	"encoding/binary"
	"fmt"

	"github.com/herald-mmo/herald/codec"
)

// Encode a frame once into a reference-counted send buffer; the same buffer
// can then be queued on any number of sessions.
func ExampleNewBuffer() {
	c := codec.Packet(0)
	b, err := codec.NewBuffer(c, codec.Frame{ID: 7, Body: []byte("hi")})
	if err != nil {
		fmt.Println(err)
		return
	}
	// b holds one reference, the caller's. A broadcast takes one per
	// recipient (b.RetainN(len(sessions))) before queueing b on each, then
	// drops its own.
	fmt.Printf("% x\n", b.Bytes())
	b.Release()

	// A frame that cannot be encoded leaves no buffer behind.
	_, err = codec.NewBuffer(codec.Packet(16), codec.Frame{Body: make([]byte, 100)})
	fmt.Println(err)
	// Output:
	// 06 00 07 00 68 69
	// herald/codec: frame too large: frame length 104 > max 16
}

// A protocol documented for Netty's LengthFieldBasedFrameDecoder: a 1-byte
// type, a 2-byte big-endian length of what follows it, then the body; the
// type is kept in Body.
func ExampleLengthField() {
	c, err := codec.LengthField(codec.LengthFieldConfig{
		ByteOrder:         binary.BigEndian,
		LengthFieldOffset: 1,
		LengthFieldLength: 2,
		MaxFrameLength:    4096,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	f, n, err := c.Decode([]byte("\x09\x00\x05hello, and the next frame"))
	fmt.Printf("%d %q %q %v\n", n, f.Wire, f.Body, err)
	// Output:
	// 8 "\t\x00\x05hello" "\t\x00\x05hello" <nil>
}

// Choose a codec by name, as the demos' -codec flag does.
func ExampleByName() {
	for _, name := range []string{"packet", "line", `delimiter:\r\n`, "fixed:4", "len32", "telnet"} {
		c, err := codec.ByName(name, 1024)
		if err != nil {
			fmt.Println(err)
			continue
		}
		wire, _ := c.Encode(nil, codec.Frame{ID: 1, Body: []byte("ping")})
		fmt.Printf("%-15s %q\n", c.Name(), wire)
	}
	// Output:
	// packet          "\b\x00\x01\x00ping"
	// line            "ping\n"
	// delimiter:\r\n  "ping\r\n"
	// fixed:4         "ping"
	// len32           "\x00\x00\x00\x04ping"
	// herald/codec: unknown codec "telnet" (known: packet, raw, line, delimiter, len16, len16le, len32, len32le, fixed:N, delimiter:BYTES)
}
