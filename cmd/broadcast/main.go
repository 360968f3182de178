// Command broadcast is herald's broadcast server: every frame received from
// any session goes, unchanged, to every connected session including the
// sender, through one shared SendBuffer. It listens on 127.0.0.1:7001 with
// the packet codec by default; with -codec line it is a chat room that nc or
// telnet can join, and with -ws ADDR too a browser: http://ADDR/ serves a
// chat page that joins the room over ws://ADDR/ws. With -nats
// nats://127.0.0.1:4222 -node NAME it is one node of a room that spans
// servers: every frame from any client on any node reaches every client on
// every node (see the README). -h lists every flag.
package main

import "github.com/herald-mmo/herald/internal/demo"

func main() {
	demo.Main("broadcast", "127.0.0.1:7001", "packet", demo.Broadcast{})
}
